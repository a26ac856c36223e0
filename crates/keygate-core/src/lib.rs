//! keygate's core: API keys for user accounts, restricted by rules, checked by
//! `KeyStore::check`. No Node.js here; the napi binding only converts.
//!
//! Nothing here may panic on any input: the binding runs inside a Node
//! process, and a panic there is at best an `INTERNAL` error. Outside tests,
//! the lints below forbid the usual ways to panic (byte slicing of strings,
//! indexing, `unwrap`/`expect`, `panic!`).
#![cfg_attr(not(test), deny(clippy::string_slice, clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod audit;
pub mod backend;
pub mod clock;
pub mod decision;
pub mod error;
pub mod glob;
pub mod incident;
pub mod ip;
pub mod memo;
pub mod model;
pub mod registry;
pub mod rule;
pub mod secret;
pub mod sqlite;
pub mod store;
pub mod time;

pub use audit::{AuditEntry, AuditQuery, AuditReport};
pub use decision::{Call, Reason};
pub use error::{Error, ErrorCode, Result};
pub use incident::{Incident, OnError, Task};
pub use memo::{Signals, Verdict};
pub use model::KeyId;
pub use store::{
    validate_rule, Actor, AuditAction, EffectiveRights, Explanation, Issued, KeyFilter, KeyPatch, KeyStore, KeyView, NewKey, Options,
    RoleView, UserInput, UserView,
};
