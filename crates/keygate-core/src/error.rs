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

/// Quotes a user-supplied value for an error message, shortened so a 1 MB
/// argument does not become a 1 MB message.
pub fn quote(value: &str) -> String {
    const MAX: usize = 80;
    let mut shown: String = value.chars().take(MAX).collect();
    if value.chars().nth(MAX).is_some() {
        shown.push('…');
    }
    format!("{shown:?}")
}
