//! The error type every fallible core call returns: a stable code plus a message
//! that names the bad value (never a secret).

use std::fmt;

/// Stable error codes of the contract (SPEC.md, "Errors").
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
    StoreIo,
    StoreCorrupt,
    StoreLocked,
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
            ErrorCode::StoreIo => "STORE_IO",
            ErrorCode::StoreCorrupt => "STORE_CORRUPT",
            ErrorCode::StoreLocked => "STORE_LOCKED",
            ErrorCode::Internal => "INTERNAL",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub code: ErrorCode,
    pub message: String,
}

impl Error {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Error { code, message: message.into() }
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

/// Replaces the body of anything shaped like a secret — a run of 43 or more
/// base62 characters at the start of the value or right after a `_` — with
/// `<redacted>`.
pub fn redact_secrets(value: &str) -> String {
    const BODY: usize = 43;
    let mut out = String::with_capacity(value.len());
    let mut run = String::new();
    let mut run_may_be_secret = true;
    let flush = |run: &mut String, out: &mut String, may_be_secret: bool| {
        if may_be_secret && run.len() >= BODY {
            out.push_str("<redacted>");
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in value.chars() {
        if c.is_ascii_alphanumeric() {
            run.push(c);
        } else {
            flush(&mut run, &mut out, run_may_be_secret);
            out.push(c);
            run_may_be_secret = c == '_';
        }
    }
    flush(&mut run, &mut out, run_may_be_secret);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_values_never_show_secrets() {
        let secret = format!("kg_{}", "a1B2".repeat(12));
        assert_eq!(quote(&secret), "\"kg_<redacted>\"");
        assert_eq!(quote(&format!("x{secret}y")), "\"xkg_<redacted>\"");
        assert_eq!(quote("key_5WmiiKcF7dy93oQ9IpMd9q"), "\"key_5WmiiKcF7dy93oQ9IpMd9q\"");
        let long_name = format!("session:{}", "a".repeat(60));
        assert!(quote(&long_name).starts_with("\"session:aaaa"));
        assert!(quote(&"x".repeat(1000)).len() < 100);
    }
}
