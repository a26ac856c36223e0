//! The machine's PostgreSQL server (127.0.0.1:5432, user postgres, trust; KEYGATE_PG_HOST,
//! KEYGATE_PG_PORT and KEYGATE_PG_USER change that, as for the TypeScript tests) for the
//! tests that use it: a database of their own each (named `keygate_test_…`, or with the prefix
//! in KEYGATE_PG_DB_PREFIX), and psql to read or damage it.

use std::net::{TcpStream, ToSocketAddrs};
use std::process::Command;
use std::time::Duration;

/// The server's host name or address.
pub fn host() -> String {
    std::env::var("KEYGATE_PG_HOST").unwrap_or_else(|_| "127.0.0.1".to_string())
}

/// The server's port.
pub fn port() -> u16 {
    std::env::var("KEYGATE_PG_PORT").ok().and_then(|port| port.parse().ok()).unwrap_or(5432)
}

/// The user the tests connect as (trust authentication: no password).
pub fn user() -> String {
    std::env::var("KEYGATE_PG_USER").unwrap_or_else(|_| "postgres".to_string())
}

/// The start of the tests' database names: runs sharing a server can tell theirs apart.
pub fn database_prefix() -> String {
    std::env::var("KEYGATE_PG_DB_PREFIX").unwrap_or_else(|_| "keygate_test".to_string())
}

/// `host:port`, for `TcpStream::connect` and messages.
pub fn server() -> String {
    let host = host();
    // An IPv6 address needs brackets before its port.
    if host.contains(':') {
        format!("[{host}]:{}", port())
    } else {
        format!("{host}:{}", port())
    }
}

pub fn server_answers() -> bool {
    let Some(addr) = server().to_socket_addrs().ok().and_then(|mut addrs| addrs.next()) else { return false };
    TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
}

pub fn psql(database: &str, sql: &str) -> String {
    let out = psql_command(database, sql).output().expect("psql runs");
    assert!(out.status.success(), "psql {sql}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `sql` run in `database` by psql, its outcome ignored: for `Drop`, where a panic
/// while a test unwinds would abort the run.
pub fn psql_quietly(database: &str, sql: &str) {
    let _ = psql_command(database, sql).output();
}

pub fn psql_command(database: &str, sql: &str) -> Command {
    let mut command = Command::new("psql");
    command.args(["-h", &host(), "-p", &port().to_string(), "-U", &user(), "-d", database, "-v", "ON_ERROR_STOP=1", "-Atc", sql]);
    command
}

/// A database of its own, dropped (with whatever is connected to it) at the end.
pub struct Db {
    pub name: String,
}

impl Db {
    pub fn new() -> Option<Db> {
        if !server_answers() {
            eprintln!("skipped: no PostgreSQL answers at {}", server());
            return None;
        }
        let mut bytes = [0u8; 6];
        getrandom::fill(&mut bytes).unwrap();
        let name = format!("{}_{}", database_prefix(), hex::encode(bytes));
        psql("postgres", &format!("CREATE DATABASE {name}"));
        Some(Db { name })
    }

    pub fn url(&self) -> String {
        format!("postgres://{}@{}/{}?sslmode=disable", user(), server(), self.name)
    }

    pub fn sql(&self, sql: &str) -> String {
        psql(&self.name, sql)
    }

    /// [`Db::sql`], `None` when the server refuses it.
    pub fn try_sql(&self, sql: &str) -> Option<String> {
        let out = psql_command(&self.name, sql).output().ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// A backup of keygate's tables (as pg_dump would take it), kept in schema `name`.
    pub fn back_up(&self, name: &str) {
        let copies: String = TABLES.iter().map(|t| format!("CREATE TABLE {name}.{t} AS SELECT * FROM public.{t};")).collect();
        self.sql(&format!("BEGIN ISOLATION LEVEL REPEATABLE READ; CREATE SCHEMA {name}; {copies} COMMIT"));
    }

    /// Every table's columns and rows, hashed: equal before and after means nothing was written.
    pub fn fingerprint(&self) -> String {
        self.sql(
            "SELECT string_agg(c.relname || ' ' || (
                      SELECT string_agg(a.attname || ':' || format_type(a.atttypid, a.atttypmod) || ':' || a.attnotnull, ',' ORDER BY a.attnum)
                      FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                    ) || ' ' || md5(query_to_xml(format('SELECT r::text AS r FROM %I r ORDER BY 1', c.relname), false, false, '')::text),
                    E'\\n' ORDER BY c.relname)
             FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r'",
        )
    }

    /// The backup in schema `name` put back into keygate's tables made afresh (by opening a
    /// store on an empty schema): whatever was dropped, renamed or retyped is as keygate makes it.
    pub fn restore_afresh(&self, name: &str) {
        self.sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public");
        keygate_core::KeyStore::open(&self.url(), keygate_core::Options::default()).unwrap().close().unwrap();
        self.restore(name);
    }

    /// The backup in schema `name` restored over keygate's tables in one transaction, as an
    /// operator would with psql (a data-only restore): every table replaced, nothing else touched.
    pub fn restore(&self, name: &str) {
        let refill: String = TABLES.iter().map(|t| format!("INSERT INTO public.{t} SELECT * FROM {name}.{t};")).collect();
        self.sql(&format!("BEGIN; TRUNCATE {}; {refill} COMMIT", TABLES.map(|t| format!("public.{t}")).join(", ")));
    }
}

/// keygate's tables, as a backup holds them.
pub const TABLES: [&str; 6] = ["keygate_meta", "keygate_roles", "keygate_users", "keygate_keys", "keygate_changes", "keygate_audit"];

impl Drop for Db {
    fn drop(&mut self) {
        psql_quietly("postgres", &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
    }
}

/// The mark keygate gives `version` with changes `json` after `previous` (see postgres/mark.rs).
pub fn mark_after(previous: &str, version: i64, json: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new().chain_update(format!("{previous} {version} {json}")).finalize();
    hex::encode(&digest[..16])
}
