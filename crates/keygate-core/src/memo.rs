//! The memo contract: how the JavaScript memo of decisions (`lib/memo.js`)
//! answers repeated checks without crossing into native code, and stays exact.
//! Everything both sides share is defined here and exported by the binding
//! (`src/hot.rs`); `lib/memo.js` and `lib/store.js` read it from there.
//!
//! # Shared memory
//!
//! Two regions, each an `ArrayBuffer` over memory the store owns (the buffer
//! keeps it alive), read by JavaScript as a `Uint32Array`:
//!
//! - **Signal words** ([`Signals`], `repr(C)`, two `u32`):
//!   - word [`GENERATION_WORD`] (`generation`): changes whenever any decision may
//!     have changed. The memo remembers the generation it was filled under and
//!     empties itself when the word differs.
//!   - word [`FLAGS_WORD`] (`flags`): while non-zero, nothing may be remembered or
//!     answered from the memo. Bits: [`Signals::STORE_UNAVAILABLE`] (a store shared
//!     with other processes cannot vouch it is current: checks answer
//!     `store_unavailable`) and [`Signals::MEMO_UNSAFE`] (the expiry watch is not
//!     running, so a remembered decision could outlive its key's expiry).
//! - **Hint filter** ([`HintFilter`], 62^4 bits): bit `i` is set when some key's
//!   secret ends in the four base62 characters whose number is `i` (see
//!   [`hints::index`]). Bits are only ever set, so a clear bit proves that no key
//!   has the secret.
//!
//! # Writers
//!
//! Every writer changes what a decision depends on first, then bumps the
//! generation (`Release`); a flag is raised or lowered before its bump, so a
//! reader that sees the new generation sees the new flags.
//!
//! | writer | where | what |
//! |---|---|---|
//! | admin commits (and the purge of expired keys) | `Inner::apply` (`store/tx.rs`) | registry changed, then bump |
//! | `setNow` | `KeyStore::set_now` (`store/mod.rs`) | clock moved, bump, wake the expiry watch |
//! | sync / catch-up with other processes | `Inner::catch_up` (`store/sync.rs`) | their changes applied, then bump |
//! | reload (read everything afresh) | `Inner::catch_up` (`Catchup::Reload`) | registry replaced, then bump |
//! | expiry watch | [`expiry`] | bump within [`MEMO_HORIZON_MS`] before each expiry instant |
//! | expiry watch cannot start or failed | [`expiry`] | raise `MEMO_UNSAFE`; a new watch lowers it |
//! | store unavailable | `Inner::lose_sync` / `Inner::sync` (`store/sync.rs`) | raise `STORE_UNAVAILABLE`; a successful catch-up lowers it |
//! | sync watcher failure (durable store) | `Inner::sync_failed` (`store/sync.rs`), called by the backend's thread | raise `STORE_UNAVAILABLE` |
//! | a key stored or loaded | `Registry` | set its hint bit (never cleared) |
//!
//! # The reader, in order (`KeyStore#isAllowed` → `Memo#find`)
//!
//! 1. **generation**: unchanged since the memo last looked, go on; changed, empty
//!    the memo and read it again below.
//! 2. **flags** (read after the generation, `Atomics.load`): non-zero, the memo is
//!    off until the generation changes again; the check goes to the core.
//! 3. **table**: the memo's own presence filter, then the call's set; an entry
//!    for the same secret, service and api (and caller address, for a key with
//!    IP rules) answers.
//! 4. **hint filter**, on a miss, while secrets that are no key's come (a few in
//!    each window of calls that reached the core; else the core refuses them and
//!    the filter's cache miss is saved): a secret whose hint bit is clear is no
//!    key's, so `isAllowed` answers `unknown_key` (denied) without a native call.
//! 5. **core**: `check` returns the packed verdict (below). The memo remembers
//!    it only for a known key, only when not transient and not the key's first
//!    check, and only while the generation is the one read in step 1 (a change
//!    made during the call bumped it).
//!
//! WebDAV requests (`KeyStore#isAllowedDav` → `checkDav`) go through a second memo
//! of their own, under the same contract: an entry of one memo is never asked for
//! a call of the other kind, so an API call and a WebDAV request with the same
//! strings (`GET`, `docs/a`) can never answer for each other.
//!
//! # The packed verdict (`check`'s and `checkDav`'s answer, one `u32`)
//!
//! - bits 0–7 ([`VERDICT_REASON_MASK`]): the reason code ([`Reason`] as a number);
//! - [`VERDICT_KNOWN_KEY`]: the secret is a key's (unknown and malformed
//!   secrets are never remembered, so a flood of them cannot fill the memo);
//! - [`VERDICT_DEPENDS_ON_IP`]: the key has IP rules, so the answer holds for
//!   this caller address only;
//! - [`VERDICT_TRANSIENT`]: do not remember: the key expires within
//!   [`MEMO_HORIZON_MS`] of the decision's instant (see [`expiry`]);
//! - [`VERDICT_FIRST_CHECK`]: do not remember: this is the key's first check since the
//!   process created or loaded it, or since it last changed (a change replaces the key's
//!   record, whose next check is a first check again). A key checked once is often not
//!   checked again soon (a start, a sweep over many keys, a flood of new ones), and
//!   remembering its call would cost a write to the memo's table that no hit repays; a
//!   key checked again is remembered then.
//!   Admission only: what the memo remembers, and so every answer, is unchanged.

pub mod expiry;
pub mod hints;

use std::sync::atomic::{AtomicU32, Ordering};

pub use expiry::{ExpiryWatch, MEMO_HORIZON_MS};
pub use hints::HintFilter;

use crate::decision::Reason;

/// Index of the generation word in the signal words.
pub const GENERATION_WORD: u32 = 0;
/// Index of the flags word in the signal words.
pub const FLAGS_WORD: u32 = 1;

/// Verdict bits 0–7: the reason code.
pub const VERDICT_REASON_MASK: u32 = 0xff;
/// Verdict bit: the secret is a key's.
pub const VERDICT_KNOWN_KEY: u32 = 1 << 8;
/// Verdict bit: the key has IP rules; the answer holds for this caller address only.
pub const VERDICT_DEPENDS_ON_IP: u32 = 1 << 9;
/// Verdict bit: do not remember (the key expires within the memo's horizon).
pub const VERDICT_TRANSIENT: u32 = 1 << 10;
/// Verdict bit: do not remember (the key's first check since it was created, loaded or changed).
pub const VERDICT_FIRST_CHECK: u32 = 1 << 11;

/// The signal words (see the module doc); shared with JavaScript as an ArrayBuffer over this struct.
#[repr(C)]
#[derive(Debug, Default)]
pub struct Signals {
    pub generation: AtomicU32,
    pub flags: AtomicU32,
}

// The word indices above are the layout of this struct.
const _: () = assert!(std::mem::offset_of!(Signals, generation) == GENERATION_WORD as usize * 4);
const _: () = assert!(std::mem::offset_of!(Signals, flags) == FLAGS_WORD as usize * 4);
const _: () = assert!(std::mem::size_of::<Signals>() == 8);

impl Signals {
    /// `flags` bit: the store cannot vouch that it is current; checks answer `store_unavailable`.
    pub const STORE_UNAVAILABLE: u32 = 1;
    /// `flags` bit: the expiry watch is not running, so remembered decisions could outlive an expiry.
    pub const MEMO_UNSAFE: u32 = 2;

    pub fn bump(&self) {
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Raises a `flags` bit, then bumps the generation so that the memo looks at
    /// it before its next answer. True when the bit was not raised before.
    pub(crate) fn raise(&self, bit: u32) -> bool {
        let before = self.flags.fetch_or(bit, Ordering::AcqRel);
        self.bump();
        before & bit == 0
    }

    /// Lowers a `flags` bit (bumping the generation); true when it was raised.
    pub(crate) fn lower(&self, bit: u32) -> bool {
        let before = self.flags.fetch_and(!bit, Ordering::AcqRel);
        if before & bit == 0 {
            return false;
        }
        self.bump();
        true
    }

    pub(crate) fn is_raised(&self, bit: u32) -> bool {
        self.flags.load(Ordering::Acquire) & bit != 0
    }
}

/// The hot-path answer: the reason, and what the memo must know about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub reason: Reason,
    /// A key with this secret exists (the decision is about a known key).
    pub known_key: bool,
    /// The key has IP rules, so the decision depends on the caller's address.
    pub depends_on_ip: bool,
    /// Not to be remembered: the key expires within [`MEMO_HORIZON_MS`] of the
    /// decision's instant.
    pub transient: bool,
    /// Not to be remembered: the key's first check since it was created, loaded or changed.
    pub first_check: bool,
}

impl Verdict {
    /// The verdict as one number (see the module doc).
    pub fn pack(self) -> u32 {
        self.reason as u32
            | if self.known_key { VERDICT_KNOWN_KEY } else { 0 }
            | if self.depends_on_ip { VERDICT_DEPENDS_ON_IP } else { 0 }
            | if self.transient { VERDICT_TRANSIENT } else { 0 }
            | if self.first_check { VERDICT_FIRST_CHECK } else { 0 }
    }
}

// Every reason code fits below the flag bits.
const _: () = assert!(Reason::ALL.len() as u32 <= VERDICT_REASON_MASK);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_packed_verdict_keeps_its_reason_and_each_bit_apart() {
        let verdict =
            Verdict { reason: Reason::StoreUnavailable, known_key: true, depends_on_ip: false, transient: true, first_check: true };
        let packed = verdict.pack();
        assert_eq!(packed & VERDICT_REASON_MASK, Reason::StoreUnavailable as u32);
        assert_eq!(packed & VERDICT_KNOWN_KEY, VERDICT_KNOWN_KEY);
        assert_eq!(packed & VERDICT_DEPENDS_ON_IP, 0);
        assert_eq!(packed & VERDICT_TRANSIENT, VERDICT_TRANSIENT);
        assert_eq!(packed & VERDICT_FIRST_CHECK, VERDICT_FIRST_CHECK);
        let plain = Verdict { reason: Reason::Allowed, known_key: false, depends_on_ip: false, transient: false, first_check: false };
        assert_eq!(plain.pack(), 0, "a plain allowed verdict is 0: the memo's cheapest hit");
    }

    #[test]
    fn raising_a_flag_bumps_the_generation_and_lowering_an_unraised_one_does_not() {
        let signals = Signals::default();
        assert!(signals.raise(Signals::MEMO_UNSAFE));
        assert_eq!(signals.generation.load(Ordering::Acquire), 1);
        assert!(!signals.raise(Signals::MEMO_UNSAFE), "already raised");
        assert!(signals.lower(Signals::MEMO_UNSAFE));
        assert!(!signals.lower(Signals::STORE_UNAVAILABLE));
        assert_eq!(signals.generation.load(Ordering::Acquire), 3);
        assert_eq!(signals.flags.load(Ordering::Acquire), 0);
    }
}
