//! The error type every fallible core call returns: a stable code plus a message
//! that names the bad value (never a secret).

use std::fmt;

/// Stable error codes of the contract (README, "Errors").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
    /// The key changed since the `updatedAt` the caller gave (optimistic concurrency).
    Conflict,
    StoreIo,
    StoreCorrupt,
    StoreLocked,
    /// A shared store (PostgreSQL) that cannot be reached within its timeout.
    StoreUnavailable,
    /// A defect inside keygate, reported instead of a crash.
    Internal,
}

impl ErrorCode {
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidArgument => "INVALID_ARGUMENT",
            ErrorCode::InvalidRule => "INVALID_RULE",
            ErrorCode::ExpiryRequired => "EXPIRY_REQUIRED",
            ErrorCode::ExpiryInPast => "EXPIRY_IN_PAST",
            ErrorCode::ExpiryTooFar => "EXPIRY_TOO_FAR",
            ErrorCode::UnknownUser => "UNKNOWN_USER",
            ErrorCode::UnknownRole => "UNKNOWN_ROLE",
            ErrorCode::UnknownKey => "UNKNOWN_KEY",
            ErrorCode::InvalidState => "INVALID_STATE",
            ErrorCode::RevokedIsFinal => "REVOKED_IS_FINAL",
            ErrorCode::Conflict => "CONFLICT",
            ErrorCode::StoreIo => "STORE_IO",
            ErrorCode::StoreCorrupt => "STORE_CORRUPT",
            ErrorCode::StoreLocked => "STORE_LOCKED",
            ErrorCode::StoreUnavailable => "STORE_UNAVAILABLE",
            ErrorCode::Internal => "INTERNAL",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub code: ErrorCode,
    pub message: String,
    /// A `STORE_UNAVAILABLE` call that gave up waiting for a lock or connection another
    /// holds, on a connection that answered: trying again at once would only wait again.
    pub(crate) gave_up_waiting: bool,
    /// A `STORE_UNAVAILABLE` of a catch-up that found the store only ahead of this process, by a
    /// write that logged no changes (a copy into it): what the process holds is a prefix of the
    /// store's history, so the reload it calls for undoes nothing, and is no episode to report.
    pub(crate) only_ahead: bool,
}

impl Error {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Error { code, message: message.into(), gave_up_waiting: false, only_ahead: false }
    }

    /// A `STORE_UNAVAILABLE` error of a call that waited its whole timeout for a lock or
    /// connection another holds (see [`Error::gave_up_waiting`]).
    pub(crate) fn gave_up_waiting(message: impl Into<String>) -> Self {
        Error { gave_up_waiting: true, ..Error::new(ErrorCode::StoreUnavailable, message) }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

/// Quotes a user-supplied value for an error message: shortened so a 1 MB
/// argument does not become a 1 MB message, and with anything shaped like a
/// secret redacted — an admin who pastes a secret where an id belongs must
/// not find it in the logs.
pub fn quote(value: &str) -> String {
    const MAX: usize = 80;
    let redacted = redact_secrets(value);
    let mut shown: String = redacted.chars().take(MAX).collect();
    if redacted.chars().nth(MAX).is_some() {
        shown.push('…');
    }
    format!("{shown:?}")
}

/// A user-supplied text (a file name, a host) for a message, as given but for the characters
/// that would act on the terminal or log showing it instead of being shown (controls, the line
/// separators, the bidi controls), written as `<U+001B>`: a path holding a newline must not
/// forge a line of a host's log.
pub fn visible(text: &str) -> String {
    let unshowable = |c: char| {
        c.is_control()
            || matches!(c, '\u{61c}' | '\u{200e}' | '\u{200f}' | '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    let mut shown = String::with_capacity(text.len());
    for c in text.chars() {
        if unshowable(c) {
            shown.push_str(&format!("<U+{:04X}>", c as u32));
        } else {
            shown.push(c);
        }
    }
    shown
}

/// A file's path for a message: [`visible`].
pub fn shown_path(path: impl AsRef<std::path::Path>) -> String {
    visible(&path.as_ref().display().to_string())
}

/// A number given from JavaScript, for a message, written as JavaScript writes it:
/// `Infinity`, `-Infinity` and `NaN` rather than Rust's `inf` and `NaN`, `0` for `-0`,
/// and an exponent from 1e21 up and below 1e-6 (`1e+300`, `1e-7`), where Rust writes every
/// digit (a 301-digit message for `1e300`); other values as both write them (`1.5`, `3`).
pub fn js_number(value: f64) -> String {
    let size = value.abs();
    if value == 0.0 {
        "0".to_string()
    } else if value.is_infinite() {
        if value > 0.0 { "Infinity" } else { "-Infinity" }.to_string()
    } else if !(1e-6..1e21).contains(&size) {
        let written = format!("{value:e}");
        // JavaScript signs a positive exponent: 1e+21.
        match written.split_once('e') {
            Some((digits, exponent)) if !exponent.starts_with('-') => format!("{digits}e+{exponent}"),
            _ => written,
        }
    } else {
        value.to_string()
    }
}

/// Names one character of a user-supplied value for a message: its code point
/// always, and the character itself only when it is a letter or digit — a
/// control or bidirectional character echoed raw could disguise the message.
pub fn describe_char(c: char) -> String {
    let code = format!("U+{:04X}", c as u32);
    if c.is_alphanumeric() || (c.is_ascii_graphic() && c != '\'') {
        format!("'{c}' ({code})")
    } else {
        code
    }
}

/// Replaces anything that may be (a large piece of) a secret with
/// `<redacted>`: a stretch of 32 or more base62 characters, counting across
/// the characters a paste may slip in between them (`-`, `.`, soft hyphens and
/// invisible format characters). A secret's body is 49 base62 characters, so
/// even one cut in two shows no long piece; key ids (22) and ordinary names
/// stay readable.
pub fn redact_secrets(value: &str) -> String {
    const LONGEST_SHOWN: usize = 31;
    let joiner = |c: char| matches!(c, '-' | '.' | '\u{ad}' | '\u{200b}'..='\u{200d}' | '\u{2060}' | '\u{feff}');
    let mut out = String::with_capacity(value.len());
    let mut stretch = String::new();
    let mut base62 = 0usize;
    let flush = |stretch: &mut String, base62: &mut usize, out: &mut String| {
        if *base62 > LONGEST_SHOWN {
            out.push_str("<redacted>");
        } else {
            out.push_str(stretch);
        }
        stretch.clear();
        *base62 = 0;
    };
    for c in value.chars() {
        if c.is_ascii_alphanumeric() {
            stretch.push(c);
            base62 += 1;
        } else if joiner(c) && base62 > 0 {
            stretch.push(c);
        } else {
            flush(&mut stretch, &mut base62, &mut out);
            out.push(c);
        }
    }
    flush(&mut stretch, &mut base62, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_text_has_no_control_or_bidi_character() {
        assert_eq!(visible("/tmp/a\nb\u{1b}[2J\u{9b}c\u{202e}d\u{2028}.db"), "/tmp/a<U+000A>b<U+001B>[2J<U+009B>c<U+202E>d<U+2028>.db");
        assert_eq!(visible("/tmp/ünïcödé 日本.db"), "/tmp/ünïcödé 日本.db");
        assert_eq!(shown_path(std::path::Path::new("x\ty")), "x<U+0009>y");
    }

    #[test]
    fn numbers_are_written_as_javascript_writes_them() {
        assert_eq!(js_number(f64::INFINITY), "Infinity");
        assert_eq!(js_number(f64::NEG_INFINITY), "-Infinity");
        assert_eq!(js_number(f64::NAN), "NaN");
        assert_eq!(js_number(-0.0), "0");
        assert_eq!(js_number(3.0), "3");
        assert_eq!(js_number(0.5), "0.5");
        assert_eq!(js_number(-2.5), "-2.5");
        // Where JavaScript switches to an exponent, and not before.
        assert_eq!(js_number(1e300), "1e+300");
        assert_eq!(js_number(-1.5e21), "-1.5e+21");
        assert_eq!(js_number(1e21), "1e+21");
        assert_eq!(js_number(1e20), "100000000000000000000");
        assert_eq!(js_number(1e-7), "1e-7");
        assert_eq!(js_number(1.5e-7), "1.5e-7");
        assert_eq!(js_number(0.000001), "0.000001");
        assert_eq!(js_number(f64::MIN_POSITIVE), "2.2250738585072014e-308");
    }

    #[test]
    fn quoted_values_never_show_secrets() {
        let secret = format!("kg_{}", "a1B2".repeat(12));
        assert_eq!(quote(&secret), "\"kg_<redacted>\"");
        assert_eq!(quote(&format!("x{secret}y")), "\"xkg_<redacted>\"");
        assert_eq!(quote("key_5WmiiKcF7dy93oQ9IpMd9q"), "\"key_5WmiiKcF7dy93oQ9IpMd9q\"");
        let long_name = format!("session:{}", "abc/".repeat(15));
        assert!(quote(&long_name).starts_with("\"session:abc/abc"));
        // A secret cut by a pasted invisible character shows no long piece either.
        let cut = format!("kg_{}\u{200b}{}", "a1B2".repeat(8), "c3D4".repeat(9));
        assert_eq!(quote(&cut), "\"kg_<redacted>\"");
        let hyphenated = format!("kg_{}-{}", "a1B2".repeat(5), "c3D4".repeat(6));
        assert_eq!(quote(&hyphenated), "\"kg_<redacted>\"");
        assert!(quote(&"x".repeat(1000)).len() < 100);
    }

    #[test]
    fn characters_are_named_without_echoing_invisible_ones() {
        assert_eq!(describe_char('é'), "'é' (U+00E9)");
        assert_eq!(describe_char('$'), "'$' (U+0024)");
        assert_eq!(describe_char('\u{202e}'), "U+202E");
        assert_eq!(describe_char('\u{1F600}'), "U+1F600");
        assert_eq!(describe_char('\n'), "U+000A");
        assert_eq!(describe_char('\''), "U+0027");
        assert!(!quote("a\u{202e}b").contains('\u{202e}'));
    }
}
