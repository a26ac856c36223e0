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
    /// `error` as callers may see it: its message withheld (the code kept) when it would
    /// give away a secret of this store (see [`KeyStore::scrub_text`]).
    pub fn scrub_error(&self, error: Error) -> Error {
        if self.gives_away_a_secret(&error.message) {
            Error::new(error.code, WITHHELD)
        } else {
            error
        }
    }

    /// `text` (a message about a call on this store, made anywhere: the JavaScript side builds
    /// some) as callers may see it: withheld whole when it quotes the random part of a secret of
    /// this store, however mangled. Quoting redacts long runs of letters and digits only, so a
    /// secret cut into short pieces by characters a name may not hold (`kg_AbC…:xYz…`, or a
    /// newline, which a quote writes as `\n`) would otherwise be shown whole, in pieces.
    /// Without the registry (held by a reload for longer than 100 ms), any text quoting a
    /// value is withheld.
    pub fn scrub_text(&self, text: &str) -> String {
        if self.gives_away_a_secret(text) {
            WITHHELD.to_string()
        } else {
            text.to_string()
        }
    }

    fn gives_away_a_secret(&self, text: &str) -> bool {
        let inner = &self.inner;
        let Some(registry) = inner.registry.try_read_for(REGISTRY_WAIT) else {
            return text.contains('"');
        };
        holds_known_secret_in_any_reading(text, &inner.prefix, |secret| registry.key_by_secret(secret).is_some())
    }
}

/// [`secret::holds_known_secret`] of `text` read each way a `%` or a `\` allows: either may be
/// a separator the user typed or the start of an escape (a URL's `%3A`, JSON's `\n` or
/// `\u00a0`), whose letters and digits would otherwise stand between the pieces of a secret.
/// So the text is read as it is, without the backslash escapes, without the percent escapes,
/// and without both. Used both for messages (withheld) and for values that would be written
/// to the audit trail (refused), so that what one finds the other finds too.
pub(super) fn holds_known_secret_in_any_reading(text: &str, prefix: &secret::Prefix, mut is_key: impl FnMut(&[u8]) -> bool) -> bool {
    let mut holds = |candidate: &str| secret::holds_known_secret(candidate.as_bytes(), prefix, &mut is_key);
    holds(text)
        || (text.contains(['%', '\\'])
            && [Escapes::Backslash, Escapes::Percent, Escapes::Both].into_iter().any(|which| holds(&without_escapes(text, which))))
}

/// Which escapes [`without_escapes`] drops.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Escapes {
    /// Rust's `{:?}` and JSON's: `\n`, `\t`, `\0`, `\"`, `\\`, `\u{a0}`, `\u00a0`, `\x07`.
    Backslash,
    /// A URL's: `%3A`.
    Percent,
    Both,
}

/// `text` without the escapes a quoted value may hold (`which`): each escape's letters and
/// digits would otherwise stand between the pieces of a secret.
fn without_escapes(text: &str, which: Escapes) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '%' && which != Escapes::Backslash {
            // A percent-encoded byte (a path in a message): its two hex digits dropped with it.
            if chars.next_if(char::is_ascii_hexdigit).is_some() {
                chars.next_if(char::is_ascii_hexdigit);
            }
            continue;
        }
        if c != '\\' || which == Escapes::Percent {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('u') if chars.peek() == Some(&'{') => {
                // `\u{…}`: up to the closing brace.
                for d in chars.by_ref() {
                    if d == '}' {
                        break;
                    }
                }
            }
            Some('u') => {
                for _ in 0..4 {
                    chars.next_if(char::is_ascii_hexdigit);
                }
            }
            Some('x') => {
                for _ in 0..2 {
                    chars.next_if(char::is_ascii_hexdigit);
                }
            }
            // `\n`, `\t`, `\r`, `\0`, `\"`, `\'`, `\\` and any other: the escape is dropped.
            _ => {}
        }
    }
    out
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

    /// A newline, tab, NUL or no-break space between the pieces is quoted as an escape
    /// (`\n`, `\t`, `\0`, `\u{a0}`) whose letters and digits stood between them.
    #[test]
    fn pieces_cut_by_characters_a_quote_escapes_are_withheld_too() {
        let (store, secret) = store_with_a_key();
        let (head, tail) = secret.split_at(25);
        for cut in ["\n", "\t", "\r\n", "\0", "\u{1b}", "\u{a0}", "\u{2028}", "\\", "\""] {
            let error = store.put_user(&UserInput { id: format!("{head}{cut}{tail}"), ..UserInput::default() }, None).unwrap_err();
            let scrubbed = store.scrub_error(error);
            assert!(scrubbed.message.contains("withheld"), "{cut:?}: {}", scrubbed.message);
        }
        // JSON's escapes too (messages the JavaScript side makes), and a path's.
        let json = format!("no user with id \"{head}\\u000a{tail}\"");
        assert!(store.scrub_text(&json).contains("withheld"), "{json}");
        let path = format!("no API GET \"/api/{head}%3A{tail}\"");
        assert!(store.scrub_text(&path).contains("withheld"), "{path}");
        // An escaped separator and a bare `%` before the secret's own hex digits, together.
        let body = secret.split_once('_').unwrap().1;
        if let Some(at) = body.char_indices().skip(20).take(20).find(|(_, c)| c.is_ascii_hexdigit()).map(|(at, _)| at) {
            let id = format!("{}\t{}%{}", &body[..11], &body[11..at], &body[at..]);
            let error = store.put_user(&UserInput { id, ..UserInput::default() }, None).unwrap_err();
            let shown = error.message.clone();
            assert!(store.scrub_error(error).message.contains("withheld"), "{shown}");
        }
    }
}
