//! The schema: its tables (created if absent, under an advisory lock so that two
//! hosts opening a new database at once make it once), the meta row (schema
//! version, epoch, version, settings, audit head), and reading the whole state.

use tokio_postgres::Client;

use super::codec::{corrupt, key_row, role_record, user_record, KEY_COLUMNS};
use super::{audit, epoch_sql, tables, Net, Position};
use crate::error::{Error, ErrorCode, Result};
use crate::registry::{Change, Registry};
use crate::secret::{random_bytes, Prefix};
use crate::store::check_lifetime_days;

/// The schema version recorded in `keygate_meta`.
/// 2: marks on change rows and the meta row (see `mark.rs`).
pub const SCHEMA_VERSION: i32 = 2;

/// The advisory lock key of schema creation (any constant no other lock uses).
const SCHEMA_LOCK: i64 = 0x6b67_0001;

/// The audit indexes hold `seq` after the key or user id, so that a page of one key's or user's
/// entries is read from the index in order (as SQLite's indexes, which hold the rowid, are): on
/// the id alone, the planner may walk the whole trail back from its newest entry instead (see
/// the test `a_page_of_one_users_or_keys_old_entries_does_not_walk_the_whole_trail`). A database
/// made before them keeps the id-only indexes (an open does not rebuild them: README, *Upgrading
/// keygate*).
const SCHEMA: &str = "
CREATE TABLE keygate_meta (
  id integer PRIMARY KEY CHECK (id = 1),
  schema_version integer NOT NULL,
  epoch text NOT NULL,
  version bigint NOT NULL,
  key_prefix text NOT NULL,
  max_lifetime_days double precision,
  audit_seq bigint NOT NULL,
  audit_hash text NOT NULL,
  mark text NOT NULL DEFAULT ''
);
CREATE TABLE keygate_roles (name text PRIMARY KEY, rights text[] NOT NULL);
CREATE TABLE keygate_users (id text PRIMARY KEY, status text NOT NULL, rights text[] NOT NULL, roles text[] NOT NULL);
CREATE TABLE keygate_keys (
  id bytea PRIMARY KEY,
  seq bigint NOT NULL,
  user_id text NOT NULL,
  description text NOT NULL,
  state text NOT NULL,
  expires_at bigint NOT NULL,
  created_at bigint NOT NULL,
  updated_at bigint NOT NULL,
  last_used_at bigint,
  hint text NOT NULL,
  digest bytea NOT NULL UNIQUE,
  rules text[] NOT NULL
);
CREATE INDEX keygate_keys_by_user ON keygate_keys (user_id);
CREATE TABLE keygate_changes (
  version bigint PRIMARY KEY,
  token text NOT NULL,
  at bigint NOT NULL,
  changes text NOT NULL,
  mark text NOT NULL DEFAULT ''
);
CREATE TABLE keygate_audit (
  seq bigint PRIMARY KEY,
  at bigint NOT NULL,
  actor text,
  action text NOT NULL,
  key_id text,
  user_id text,
  detail text NOT NULL,
  hash bytea NOT NULL
);
CREATE INDEX keygate_audit_by_key ON keygate_audit (key_id, seq);
CREATE INDEX keygate_audit_by_user ON keygate_audit (user_id, seq);
";

/// From schema 1: marks. Rows written before them have none (the empty mark), so
/// processes that follow them read the whole state once.
const MIGRATE_1_TO_2: &str = "
ALTER TABLE keygate_meta ADD COLUMN IF NOT EXISTS mark text NOT NULL DEFAULT '';
ALTER TABLE keygate_changes ADD COLUMN IF NOT EXISTS mark text NOT NULL DEFAULT '';
UPDATE keygate_meta SET schema_version = 2 WHERE id = 1;
";

/// The settings and position recorded in the meta row.
pub(super) struct Meta {
    pub prefix: Prefix,
    pub max_lifetime_days: Option<f64>,
    /// The tables were made by this open.
    pub created: bool,
}

/// The error for a database a newer keygate wrote (schema `version`).
pub(super) fn written_by_newer(version: i32) -> Error {
    corrupt(format!("it was written by a newer keygate (schema {version}; this one reads up to {SCHEMA_VERSION})"))
}

/// Refuses a change log holding rows past the recorded `version` (`last`: the last row's, `None`:
/// no row), as an audit trail with entries past its head is refused: added behind keygate's back
/// (by hand, or tables restored from different moments), the next write would take a version one
/// of them holds, and fail as a duplicate key until someone removed it.
pub(super) fn change_log_extendable(version: i64, last: Option<i64>) -> Result<()> {
    match last {
        Some(last) if last > version => {
            Err(corrupt(format!("its change log has entries (up to {last}) beyond its recorded version ({version})")))
        }
        _ => Ok(()),
    }
}

/// Refuses a server that cannot take writes or keep a LISTEN: a hot standby, or
/// a session that is read-only; and a database whose encoding is not UTF-8.
pub(super) fn check_writable(net: &Net, client: &Client) -> Result<()> {
    let row = net.run(
        "checking",
        client.query_one("SELECT pg_is_in_recovery(), current_setting('transaction_read_only'), current_setting('server_encoding')", &[]),
    )?;
    let recovery: bool = row.try_get(0).unwrap_or(false);
    let read_only: String = row.try_get(1).unwrap_or_default();
    let encoding: String = row.try_get(2).unwrap_or_default();
    // The server converts the text it stores from the client's UTF-8 to the database's
    // encoding and back: LATIN1 and the like refuse most characters at the write, and some
    // conversions do not come back as they went (EUC_JP reads U+00A6 back as U+FFE4), which
    // would change a description under the process that wrote it and break the audit chain
    // sealed over it. SQL_ASCII stores the bytes as given (checked as the client's UTF-8).
    if encoding != "UTF8" && encoding != "SQL_ASCII" {
        return Err(Error::new(
            ErrorCode::InvalidArgument,
            format!(
                "{} is a database of encoding {encoding}, which cannot hold every text keygate stores: keygate needs a database created with ENCODING 'UTF8'",
                net.target.name
            ),
        ));
    }
    if recovery {
        return Err(Error::new(
            ErrorCode::InvalidArgument,
            format!(
                "{} is a read-only server (a replica in recovery): keygate needs the primary, where it writes and LISTENs",
                net.target.name
            ),
        ));
    }
    // On the primary, but every transaction of this session read-only: "a read-only server,
    // needs the primary" sent an operator who had made a gateway's role read-only looking for
    // another server. The way to a process that never writes is a role without the privilege.
    if read_only == "on" {
        return Err(Error::new(
            ErrorCode::InvalidArgument,
            format!(
                "{}: this session's transactions are read-only (default_transaction_read_only is on, set for the role, the \
                 database or in the URL's options), and keygate needs a session that may write. For a process that must \
                 not change the store (a gateway), connect as a role granted only SELECT on keygate's tables instead: it \
                 opens and follows the store, its admin calls throw STORE_IO, and its lastUsedAt flushes fail through onError",
                net.target.name
            ),
        ));
    }
    Ok(())
}

/// Creates the schema in a database without one, or checks an existing one's
/// version and key prefix. Returns the recorded settings.
pub(super) fn ensure(net: &Net, client: &Client, wanted_prefix: Option<&str>, wanted_max_days: Option<f64>, create: bool) -> Result<Meta> {
    net.run("locking the schema of", client.batch_execute(&net.target.begin))?;
    match ensure_in_transaction(net, client, wanted_prefix, wanted_max_days, create) {
        Ok(meta) => {
            net.run("writing the schema of", client.batch_execute("COMMIT"))?;
            Ok(meta)
        }
        Err(e) => {
            // The first error is the one to tell (a ROLLBACK queued behind a lock wait that
            // timed out fails too); the connection is not used again.
            let _ = net.run("writing the schema of", client.batch_execute("ROLLBACK"));
            Err(e)
        }
    }
}

fn ensure_in_transaction(
    net: &Net,
    client: &Client,
    wanted_prefix: Option<&str>,
    wanted_max_days: Option<f64>,
    create: bool,
) -> Result<Meta> {
    net.run("locking the schema of", client.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK]))?;
    let exists = tables::examine(net, client)?;
    if !exists && !create {
        return Err(Error::new(ErrorCode::StoreIo, format!("no keygate store in {}: the database has no keygate tables", net.target.name)));
    }
    if !exists {
        let prefix = match wanted_prefix {
            Some(p) => Prefix::new(p)?,
            None => Prefix::default(),
        };
        let mut epoch = [0u8; 16];
        random_bytes(&mut epoch)?;
        net.run("creating the schema of", client.batch_execute(SCHEMA))?;
        net.run(
            "creating the schema of",
            client.execute(
                "INSERT INTO keygate_meta (id, schema_version, epoch, version, key_prefix, max_lifetime_days, audit_seq, audit_hash)
                 VALUES (1, $1, $2, 0, $3, $4, 0, $5)",
                &[
                    &SCHEMA_VERSION,
                    &hex::encode(epoch),
                    &prefix.as_str(),
                    &wanted_max_days,
                    &crate::audit::hash_to_hex(&crate::audit::GENESIS),
                ],
            ),
        )?;
    }
    let row = net
        .run(
            "reading the schema of",
            client.query_opt(
                "SELECT schema_version, key_prefix, max_lifetime_days, audit_seq, audit_hash, (SELECT max(seq) FROM keygate_audit),
                        version, (SELECT max(version) FROM keygate_changes)
                 FROM keygate_meta WHERE id = 1",
                &[],
            ),
        )?
        .ok_or_else(|| corrupt("its keygate_meta row is missing"))?;
    let version: i32 = row.try_get(0).map_err(|e| corrupt(format!("its schema version: {e}")))?;
    if version > SCHEMA_VERSION {
        return Err(written_by_newer(version));
    }
    if version < 1 {
        return Err(corrupt(format!("its schema version {version} is not one keygate writes (1 to {SCHEMA_VERSION})")));
    }
    // A head the next write cannot extend is refused before anything is written (as the SQLite
    // store refuses one): entries past it would make every write collide with one of them.
    let audit_head = (|| Ok::<_, tokio_postgres::Error>((row.try_get(3)?, row.try_get::<_, String>(4)?, row.try_get(5)?)))();
    let (seq, hash, last) = audit_head.map_err(|e| corrupt(format!("its recorded audit head: {e}")))?;
    audit::extendable(seq, &hash, last)?;
    let change_log = (|| Ok::<_, tokio_postgres::Error>((row.try_get(6)?, row.try_get(7)?)))();
    let (recorded_version, last_change) = change_log.map_err(|e| corrupt(format!("its recorded version: {e}")))?;
    change_log_extendable(recorded_version, last_change)?;
    if version == 1 {
        net.run("upgrading the schema of", client.batch_execute(MIGRATE_1_TO_2))?;
    }
    let stored: String = row.try_get(1).map_err(|e| corrupt(format!("its key prefix: {e}")))?;
    let prefix = Prefix::new(&stored).map_err(|_| corrupt("its key prefix is invalid"))?;
    if let Some(wanted) = wanted_prefix {
        if wanted != prefix.as_str() {
            return Err(Error::new(
                ErrorCode::InvalidArgument,
                format!("keyPrefix {wanted:?} differs from {:?}, the prefix this store was created with", prefix.as_str()),
            ));
        }
    }
    // Never left out when unreadable: the default (730 days) would allow expiries the store's limit refuses.
    let max_lifetime_days: Option<f64> = row.try_get(2).map_err(|e| corrupt(format!("its recorded maxLifetimeDays: {e}")))?;
    if let Some(days) = max_lifetime_days {
        check_lifetime_days(days).map_err(|e| corrupt(format!("its recorded {}", e.message)))?;
    }
    Ok(Meta { prefix, max_lifetime_days, created: !exists })
}

/// The whole state and the position it is at, read in one snapshot. Inside a
/// transaction the caller opened (the write lock's), or in a repeatable-read one
/// of its own when `own_transaction`.
pub(super) fn load(net: &Net, client: &Client, own_transaction: bool) -> Result<(Registry, Position)> {
    if own_transaction {
        net.run("reading", client.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"))?;
    }
    let result = load_rows(net, client);
    if own_transaction {
        let _ = net.run("reading", client.batch_execute("COMMIT"));
    }
    result
}

fn load_rows(net: &Net, client: &Client) -> Result<(Registry, Position)> {
    // The planner's estimate of the key count (-1 before the table was ever analysed): it sizes the tables.
    let meta = net.run(
        "reading",
        client.query_one(
            concat!(
                "SELECT ",
                epoch_sql!(),
                ", m.version, m.mark, (SELECT greatest(reltuples, 0)::bigint FROM pg_class WHERE oid = 'keygate_keys'::regclass)",
                " FROM keygate_meta m WHERE m.id = 1"
            ),
            &[],
        ),
    )?;
    let position = Position::read(&meta).map_err(|e| corrupt(format!("its keygate_meta row: {e}")))?;
    let expected_keys = meta.try_get::<_, Option<i64>>(3).ok().flatten().and_then(|n| usize::try_from(n).ok()).unwrap_or(0);
    let mut registry = Registry::default();
    registry.reserve_keys(expected_keys);
    let mut load = |change| registry.load(change).map_err(|e| corrupt(e.message));
    net.for_each_row("reading roles of", client, "SELECT name, rights FROM keygate_roles", &[], |row| {
        let (name, rights) = (row.try_get(0), row.try_get(1));
        load(Change::PutRole(role_record(name.map_err(corrupt)?, rights.map_err(corrupt)?)?))
    })?;
    net.for_each_row("reading users of", client, "SELECT id, status, rights, roles FROM keygate_users", &[], |row| {
        let fields =
            (|| Ok::<_, tokio_postgres::Error>((row.try_get(0)?, row.try_get::<_, String>(1)?, row.try_get(2)?, row.try_get(3)?)))();
        let (id, status, rights, roles) = fields.map_err(corrupt)?;
        load(Change::PutUser(user_record(id, &status, rights, roles)?))
    })?;
    let keys = format!("SELECT {KEY_COLUMNS} FROM keygate_keys");
    net.for_each_row("reading keys of", client, keys.as_str(), &[], |row| load(Change::PutKey(key_row(row)?)))?;
    Ok((registry, position))
}
