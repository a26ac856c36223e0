//! keygate's core: API keys for user accounts, restricted by rules, checked by
//! `KeyStore::check`. No Node.js here; the napi binding only converts.

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
