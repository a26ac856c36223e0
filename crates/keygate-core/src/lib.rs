//! keygate's core: API keys for user accounts, restricted by rules, checked by
//! `KeyStore::check`. No Node.js here; the napi binding only converts.
//!
//! Nothing here may panic on any input: the binding runs inside a Node
//! process, and a panic there is at best an `INTERNAL` error. Outside tests,
//! the lints below forbid the usual ways to panic (byte slicing of strings,
//! indexing, `unwrap`/`expect`, `panic!`).
#![cfg_attr(not(test), deny(clippy::string_slice, clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used, clippy::panic))]

//! # The API
//!
//! Everything a user of the crate needs is re-exported here: [`KeyStore`] and
//! its input and view types, the [`Call`] (or [`DavCall`]) a check decides and its [`Reason`],
//! [`Error`]s with their stable [`ErrorCode`]s, the audit trail's types, and
//! what background failures report ([`Incident`]). [`memo`] is public as the
//! contract with the JavaScript memo (its constants cross to JS through the
//! binding). The modules themselves are crate-private.
//!
//! # Where things are
//!
//! | module | holds |
//! |---|---|
//! | `store/` | [`KeyStore`]: admin calls, checks, the write transaction, catch-up |
//! | `decision` | the decision, step by step (`authenticate`, then `authorize`) |
//! | `registry` | the state in memory and the one way it changes (`Change`) |
//! | `key_table`, `hint_index`, `prefetch`, `huge_pages` | keys placed and found by the secret's hint; cache-line prefetching; huge pages for the key tables |
//! | `model` | users, roles, keys, [`KeyId`], and the checks of names and texts |
//! | `rule`, `glob`, `fold`, `ip`, `dav` | rules: parsing, normalising, matching (names folded and validated); WebDAV requests |
//! | `secret` | secrets: issuing, shape, digest, finding one in a text |
//! | `backend` | the `Backend` seam: where changes go |
//! | `sqlite/` | the durable backend: one SQLite file shared by processes |
//! | `postgres/` | the shared backend: one PostgreSQL database shared by hosts |
//! | `audit` | the hash-chained audit trail |
//! | [`memo`] | the contract with the JavaScript memo; the expiry watch |
//! | `incident`, `clock`, `time`, `error` | reporting, time, errors |

mod audit;
mod backend;
mod clock;
mod dav;
mod decision;
mod error;
mod fold;
mod glob;
mod hint_index;
mod huge_pages;
mod incident;
mod ip;
mod key_table;
pub mod memo;
mod model;
mod postgres;
mod prefetch;
mod registry;
mod rule;
mod secret;
mod sqlite;
mod store;
mod time;

pub use audit::{AuditEntry, AuditQuery, AuditReport};
pub use dav::{MAX_DAV_METHOD_LEN, MAX_DAV_PATH_LEN};
pub use decision::{Call, DavCall, Reason};
pub use error::{redact_secrets, Error, ErrorCode, Result};
pub use glob::MAX_NAME_LEN;
pub use incident::{Incident, OnError, Task};
pub use memo::{Signals, Verdict};
pub use model::{check_actor, KeyId, KeyState, UserStatus, MAX_USER_ROLES};
pub use rule::{validate_rule, MAX_RULES};
pub use secret::{AFTER_PREFIX_LEN, MAX_SECRET_LEN};
pub use store::{
    Actor, AuditAction, CopyReport, EffectiveRights, Expect, Explanation, Health, Issued, KeyCounts, KeyFilter, KeyPage, KeyPageQuery,
    KeyPatch, KeyStore, KeyView, NewKey, Options, PendingCheck, RoleView, UserInput, UserView,
};

/// The pieces below the API that keygate's own integration tests, fuzz targets
/// and benches drive directly (the decision on a bare registry, parsers, the
/// schema the store-load fuzzer damages, the PostgreSQL change log's JSON and
/// the catch-up that applies it). Not an API: no stability promised.
#[doc(hidden)]
pub mod internals {
    pub use crate::audit::{user_record, verify, AuditDraft, GENESIS};
    pub use crate::clock::{system_now, Clock};
    pub use crate::dav::{is_valid_path, is_valid_request, DavNames, DavRule};
    pub use crate::decision::{
        authenticate, authorize, authorize_dav, decide, decide_dav, decide_dav_unavailable, decide_unavailable, Outcome,
    };
    pub use crate::glob::Glob;
    pub use crate::ip::{parse_caller_ip, IpNet};
    pub use crate::model::{check_actor, check_description, check_name, Key};
    pub use crate::postgres::{decode_pg_changes, encode_pg_changes};
    pub use crate::registry::{record_of, Change, KeyRecord, Registry, RoleRecord, UserRecord};
    pub use crate::rule::{normalise_list, parse_rule, Rule, RuleUse};
    pub use crate::secret::{digest, find_secret, generate, is_well_formed, Prefix, SecretDigest};
    pub use crate::sqlite::TABLES;
    pub use crate::store::apply_changes;
}
