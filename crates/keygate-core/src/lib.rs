//! keygate's core: API keys for user accounts, restricted by rules, checked by
//! `KeyStore::check`. No Node.js here; the napi binding only converts.
//!
//! Nothing here may panic on any input: the binding runs inside a Node
//! process, and a panic there is at best an `INTERNAL` error. Outside tests,
//! the lints below forbid the usual ways to panic (byte slicing of strings,
//! indexing, `unwrap`/`expect`, `panic!`).
#![cfg_attr(
    not(test),
    deny(clippy::string_slice, clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod audit;
pub mod backend;
pub mod clock;
pub mod decision;
pub mod error;
pub mod expiry;
pub mod glob;
pub mod hints;
pub mod ip;
pub mod model;
pub mod registry;
pub mod rule;
pub mod secret;
pub mod sqlite;
pub mod store;
pub mod time;

pub use decision::{Call, Reason};
pub use error::{Error, ErrorCode, Result};
pub use audit::{AuditEntry, AuditQuery, AuditReport};
pub use store::{
    validate_rule, Actor, Explanation, Incident, Issued, KeyFilter, KeyPatch, KeyStore, KeyView, NewKey, OnError, Options, RoleView, Signals, Task,
    UserInput, UserView, Verdict,
};
