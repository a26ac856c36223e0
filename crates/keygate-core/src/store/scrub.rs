//! Error messages that would give away a secret of this store are withheld.

use std::time::Duration;

use super::KeyStore;
use crate::error::Error;
use crate::secret;

/// What a withheld message says instead.
const WITHHELD: &str = "a value given holds (part of) a secret of this store; the message that would quote it is withheld";

/// How long scrubbing waits for the registry (a reload may hold it) before judging without it.
const REGISTRY_WAIT: Duration = Duration::from_millis(100);

impl KeyStore {
    /// `error` as callers may see it: its message withheld (the code kept) when it quotes
    /// the random part of a secret of this store, however mangled. Quoting redacts long runs
    /// of letters and digits only, so a secret cut into short pieces by characters a name may
    /// not hold (`kg_AbC…:xYz…`) would otherwise be shown whole, in pieces. Without the
    /// registry (held by a reload for longer than 100 ms), any message quoting a
    /// value is withheld.
    pub fn scrub_error(&self, error: Error) -> Error {
        let inner = &self.inner;
        let holds_secret = match inner.registry.try_read_for(REGISTRY_WAIT) {
            Some(registry) => {
                secret::holds_known_secret(error.message.as_bytes(), &inner.prefix, |candidate| registry.key_by_secret(candidate).is_some())
            }
            None => error.message.contains('"'),
        };
        if holds_secret {
            Error::new(error.code, WITHHELD)
        } else {
            error
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::error::ErrorCode;
    use crate::store::{KeyStore, NewKey, Options, UserInput};

    fn store_with_a_key() -> (KeyStore, String) {
        let store = KeyStore::in_memory(Options { now: Some(1_000_000), ..Options::default() }).unwrap();
        store.put_user(&UserInput { id: "u".into(), ..UserInput::default() }, None).unwrap();
        let input =
            NewKey { user_id: "u".into(), description: String::new(), expires_at: Some(1_000_000 + 86_400_000), ..NewKey::default() };
        let issued = store.create_key(&input, None).unwrap();
        (store, issued.secret)
    }

    /// A secret cut in two by a character a user id may not hold: each piece is too short for
    /// quoting to redact, so the unscrubbed message shows the whole secret.
    #[test]
    fn a_message_quoting_a_secret_of_the_store_in_pieces_is_withheld() {
        let (store, secret) = store_with_a_key();
        let (head, tail) = secret.split_at(25);
        let mangled = format!("{head}:{tail}");
        let error = store.put_user(&UserInput { id: mangled.clone(), ..UserInput::default() }, None).unwrap_err();
        let pieces_shown = error.message.contains(head) && error.message.contains(tail);
        assert!(pieces_shown, "the unscrubbed message quotes the pieces: {}", error.message);
        let scrubbed = store.scrub_error(error);
        assert_eq!(scrubbed.code, ErrorCode::InvalidArgument);
        assert!(!scrubbed.message.contains(head) && !scrubbed.message.contains(tail), "{}", scrubbed.message);
        assert!(scrubbed.message.contains("withheld"), "{}", scrubbed.message);
    }

    #[test]
    fn other_messages_are_kept() {
        let (store, _) = store_with_a_key();
        let error = store.put_user(&UserInput { id: "bad:id".into(), ..UserInput::default() }, None).unwrap_err();
        let message = error.message.clone();
        assert_eq!(store.scrub_error(error).message, message);
        // Another store's secret, in pieces: not this store's, so kept (quoting keeps pieces).
        let (_, other) = store_with_a_key();
        let (head, tail) = other.split_at(25);
        let error = store.put_user(&UserInput { id: format!("{head}:{tail}"), ..UserInput::default() }, None).unwrap_err();
        let message = error.message.clone();
        assert_eq!(store.scrub_error(error).message, message);
    }
}
