//! Reaching the database: the URL (its `sslmode` and `sslrootcert`, which
//! keygate reads itself), TLS over rustls, and connections whose every wait is
//! bounded. A connection's messages are driven by a task on its own current-thread
//! runtime (the listener's, the writer's); the listener's notifications are forwarded to a channel.

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};
use tokio::task::JoinHandle;
use tokio_postgres::config::SslMode;
use tokio_postgres::{AsyncMessage, Client, Config};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::error::{Error, ErrorCode, Result};

/// The notification channel every keygate process listens on.
pub(super) const CHANNEL: &str = "keygate";
/// How long [`Net::end_connections`](super::Net::end_connections) drives one runtime
/// before it turns to the other.
const END_TURN: Duration = Duration::from_millis(10);

/// How TLS is used, as libpq's `sslmode` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TlsMode {
    Disable,
    /// TLS when the server offers it, the certificate not verified (libpq's default).
    Prefer,
    /// TLS always, the certificate not verified (unless an `sslrootcert` is given: see
    /// [`TlsMode::with_root`]).
    Require,
    /// TLS always, the certificate chain verified, not the host name.
    VerifyCa,
    /// TLS always, the certificate chain and the host name verified.
    VerifyFull,
}

impl TlsMode {
    /// The mode in force once `sslrootcert` is given or not: `require` with a root certificate
    /// checks the chain, as `verify-ca` (as libpq does): a caller who names the CA to trust
    /// expects the server's certificate to be checked against it.
    fn with_root(self, root_cert: Option<&str>) -> TlsMode {
        match (self, root_cert) {
            (TlsMode::Require, Some(_)) => TlsMode::VerifyCa,
            (mode, _) => mode,
        }
    }
}

/// Where and how to connect, parsed once at open.
pub(super) struct Target {
    config: Config,
    tls: MakeRustlsConnect,
    /// `host:port/database`, for messages (never the user's password).
    pub(super) name: String,
    pub(super) connect_timeout: Duration,
    pub(super) statement_timeout: Duration,
    /// Opens a transaction whose lock waits the server itself ends just before the
    /// statement timeout (see [`begin_bounded`]).
    pub(super) begin: String,
}

/// `BEGIN`, with `lock_timeout` set for that transaction to [`lock_wait`] of `limit`, and
/// `idle_in_transaction_session_timeout` to [`idle_in_write`] of it. The client stops
/// waiting after `limit`, but a server backend waiting for a lock does not notice its
/// client gone: without this it stays queued behind the lock's holder, and takes the lock
/// once it is let go, long after the call failed. Set for the transaction only
/// (`set_config(…, true)`, as `SET LOCAL`) rather than as a startup option, which
/// connection poolers may refuse; sent with the `BEGIN`, no round trip of its own.
fn begin_bounded(limit: Duration) -> String {
    format!(
        "BEGIN; SELECT {}, {}",
        at_most("lock_timeout", lock_wait(limit)),
        at_most("idle_in_transaction_session_timeout", idle_in_write(limit))
    )
}

/// SQL that sets `setting` (a timeout in milliseconds, 0 for none) for the transaction to
/// `ms`, unless the session already has a smaller one: an operator's stricter bound (for
/// the role or the database) stays in force. `current_setting` shows it with a unit
/// (`1500ms`, `2min`, `0`), which PostgreSQL's interval syntax reads.
fn at_most(setting: &str, ms: u128) -> String {
    format!(
        "set_config('{setting}', least(nullif((extract(epoch FROM current_setting('{setting}')::interval) * 1000)::bigint, 0), {ms})::text, true)"
    )
}

/// Milliseconds a locking transaction may sit idle, its client between two statements,
/// before the server ends the session (rolling the transaction back): four times `limit`,
/// and at least 10 s. A process frozen in the middle of a write (SIGSTOP, a paused VM, a
/// debugger) still answers TCP keepalives from its kernel, so without this its session would
/// hold `keygate_meta`'s row, and with it every host's writes, for as long as it stays frozen.
/// Between its statements a write only applies changes in memory, far sooner than that.
/// At most PostgreSQL's largest setting (`i32::MAX` ms), which the statement timeout's own
/// bound (an hour) keeps it far under.
fn idle_in_write(limit: Duration) -> u128 {
    limit.as_millis().saturating_mul(4).clamp(10_000, i32::MAX as u128)
}

/// Milliseconds a transaction waits for a lock within a call limited to `limit`: a tenth
/// less, and at least 5 ms less (but never under half), so that the server ends the wait
/// and says so (`55P03`) while the client still listens. A call that times out on the
/// client is retried on a new connection (it may have been lost); one the server answered
/// is not, and so fails after one wait, not two. (Over a link slower than the margin the
/// client gives up first, and the call is retried as before.) At least 1:
/// `lock_timeout = 0` would mean no limit.
fn lock_wait(limit: Duration) -> u128 {
    let ms = limit.as_millis();
    ms.saturating_sub((ms / 10).max(5)).max(ms / 2).max(1)
}

fn invalid(message: String) -> Error {
    Error::new(ErrorCode::InvalidArgument, message)
}

/// `%XX` sequences decoded (a malformed one is kept as it is).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u8::from_str_radix(h, 16).ok());
        match (byte, hex) {
            (b'%', Some(decoded)) => {
                out.push(decoded);
                i += 3;
            }
            _ => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl super::Net {
    /// Asks the server, over a connection of its own, to cancel the statement `client` runs,
    /// waiting at most `limit`: a backend waiting for a lock does not notice its client gone.
    /// Nothing is told of a failure (the connection is being ended anyway).
    pub(super) fn cancel_running(&self, client: &Client, limit: Duration) {
        let token = client.cancel_token();
        let tls = self.target.tls.clone();
        // The timer made inside the runtime, whose clock it needs.
        let _ = self.rt.block_on(async { tokio::time::timeout(limit, token.cancel_query(tls)).await });
    }

    /// A new connection (bounded by the connect timeout), its messages driven on
    /// this runtime; notifications go to the receiver.
    pub(super) fn connect(&self) -> Result<(Client, UnboundedReceiver<String>)> {
        self.connect_within(self.target.connect_timeout)
    }

    /// [`Net::connect`], waiting at most `limit`. The task driving the connection is
    /// kept, so that [`Net::end_connections`] can wait for it to say goodbye.
    pub(super) fn connect_within(&self, limit: Duration) -> Result<(Client, UnboundedReceiver<String>)> {
        let target = &self.target;
        let started = Instant::now();
        let config = target.resolved(limit)?;
        let limit = limit.saturating_sub(started.elapsed());
        let applies = self.stop_applies();
        let connecting = self.rt.block_on(async {
            tokio::select! {
                biased;
                connected = tokio::time::timeout(limit, config.connect(target.tls.clone())) => Some(connected),
                () = self.stop.fired_if(applies) => None,
            }
        });
        let Some(connecting) = connecting else {
            return Err(super::stopped("cannot connect to", &target.name));
        };
        let (client, mut connection) = match connecting {
            Ok(Ok(pair)) => pair,
            Ok(Err(e)) => return Err(target.error("cannot connect to", &e)),
            Err(_) => {
                return Err(Error::new(
                    ErrorCode::StoreUnavailable,
                    format!("cannot connect to {} within {} ms", target.name, limit.as_millis()),
                ))
            }
        };
        let (sender, receiver) = unbounded_channel();
        let driver = self.rt.spawn(async move {
            loop {
                match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                    Some(Ok(AsyncMessage::Notification(n))) => {
                        if sender.send(n.payload().to_string()).is_err() {
                            // Nobody listens any more; keep driving the connection for its client.
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => return,
                }
            }
        });
        let mut drivers = self.drivers.lock();
        drivers.retain(|driver| !driver.is_finished());
        drivers.push(driver);
        Ok((client, receiver))
    }

    /// Ends the connections of `nets` whose clients have been dropped: each says goodbye
    /// to the server if it can by `deadline`, else (a server that stopped answering) is cut,
    /// its socket closed. Nothing else drives these runtimes once the store is closed, so
    /// without this the server would keep the connections until the store is collected.
    ///
    /// The runtimes are driven in turns of [`END_TURN`], not one after the other: a
    /// connection that cannot say goodbye (it still awaits an answer) would otherwise use
    /// up the wait, and the other runtime's connections, which need a round trip of their
    /// own (the answer to a statement's close, say), would be cut unheard.
    pub(super) fn end_connections(nets: &[&super::Net], deadline: Instant) {
        let mut ending: Vec<_> = nets.iter().map(|net| (*net, std::mem::take(&mut *net.drivers.lock()))).collect();
        loop {
            let turn_ends = (Instant::now() + END_TURN).min(deadline);
            let mut running = false;
            for (net, drivers) in &mut ending {
                running |= net.drive_until_ended(drivers, turn_ends);
            }
            if !running || Instant::now() >= deadline {
                break;
            }
        }
        for (net, drivers) in ending {
            if !drivers.is_empty() {
                net.rt.block_on(async {
                    for driver in drivers {
                        driver.abort();
                        let _ = driver.await;
                    }
                });
            }
        }
    }

    /// Drives this runtime until `drivers` have ended or `until`; keeps those still
    /// running and says whether there are any.
    fn drive_until_ended(&self, drivers: &mut Vec<JoinHandle<()>>, until: Instant) -> bool {
        if !drivers.is_empty() {
            self.rt.block_on(async {
                let _ = tokio::time::timeout_at(until.into(), async {
                    for driver in drivers.iter_mut() {
                        if !driver.is_finished() {
                            let _ = driver.await;
                        }
                    }
                })
                .await;
            });
            drivers.retain(|driver| !driver.is_finished());
        }
        !drivers.is_empty()
    }
}

impl Target {
    /// The config to connect with: its host names looked up on a thread of keygate's own, each
    /// address given to the driver beside its name (kept for TLS). The driver would look them
    /// up on its runtime's blocking pool, which panics when no thread can be started (a
    /// process at its thread limit): the open, or the listener's reconnect, failed as an
    /// internal defect instead of a `STORE_IO` saying what ran out. A config with nothing to
    /// look up (IP addresses, `hostaddr`, a Unix socket among its hosts) is used as it is.
    fn resolved(&self, limit: Duration) -> Result<std::borrow::Cow<'_, Config>> {
        use tokio_postgres::config::Host;
        let hosts = self.config.get_hosts();
        let named = |host: &Host| matches!(host, Host::Tcp(name) if name.parse::<std::net::IpAddr>().is_err());
        let unix = |host: &Host| !matches!(host, Host::Tcp(_));
        if !self.config.get_hostaddrs().is_empty() || !hosts.iter().any(named) || hosts.iter().any(unix) {
            return Ok(std::borrow::Cow::Borrowed(&self.config));
        }
        let wanted: Vec<(String, u16)> = hosts
            .iter()
            .enumerate()
            .filter_map(|(i, host)| match host {
                Host::Tcp(name) => Some((name.clone(), port_of(&self.config, i))),
                _ => None,
            })
            .collect();
        let (sender, receiver) = std::sync::mpsc::channel();
        let lookups = wanted.clone();
        std::thread::Builder::new()
            .name("keygate-postgres-lookup".into())
            .spawn(move || {
                let found: Vec<_> =
                    lookups.iter().map(|(name, port)| std::net::ToSocketAddrs::to_socket_addrs(&(name.as_str(), *port))).collect();
                let _ = sender.send(found);
            })
            .map_err(|e| {
                Error::new(
                    ErrorCode::StoreIo,
                    format!("cannot connect to {}: cannot start a thread to look up its host name: {e}", self.name),
                )
            })?;
        let found = receiver.recv_timeout(limit).map_err(|_| {
            Error::new(
                ErrorCode::StoreUnavailable,
                format!("cannot connect to {} within {} ms (looking up its host name)", self.name, limit.as_millis()),
            )
        })?;
        let mut config = without_hosts(&self.config);
        let mut failure = None;
        for ((name, port), addresses) in wanted.iter().zip(found) {
            match addresses {
                Ok(addresses) => {
                    for address in addresses {
                        config.host(name).hostaddr(address.ip()).port(*port);
                    }
                }
                Err(e) => failure = Some(format!("cannot look up {name}: {e}")),
            }
        }
        if config.get_hosts().is_empty() {
            let why = failure.unwrap_or_else(|| "its host names have no address".to_string());
            return Err(Error::new(ErrorCode::StoreUnavailable, format!("cannot connect to {}: {why}", self.name)));
        }
        Ok(std::borrow::Cow::Owned(config))
    }

    /// Parses a `postgres://` or `postgresql://` URL. Errors never repeat the URL
    /// (it may hold a password).
    pub(super) fn parse(url: &str, connect_timeout: Duration, statement_timeout: Duration) -> Result<Target> {
        let (base, query) = split_query(url);
        let mut mode = TlsMode::Prefer;
        let mut root_cert = None;
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "sslmode" => {
                    mode = match percent_decode(value).as_str() {
                        "disable" => TlsMode::Disable,
                        "prefer" | "allow" => TlsMode::Prefer,
                        "require" => TlsMode::Require,
                        "verify-ca" => TlsMode::VerifyCa,
                        "verify-full" => TlsMode::VerifyFull,
                        _ => {
                            return Err(invalid(
                                "the store URL's sslmode must be disable, prefer, require, verify-ca or verify-full".to_string(),
                            ))
                        }
                    }
                }
                "sslrootcert" => root_cert = Some(percent_decode(value)),
                _ => kept.push(pair),
            }
        }
        // A URL's scheme is case-insensitive (`POSTGRES://`); the driver's parser takes it in lower case.
        let base = match base.split_once("://") {
            Some((scheme, after)) => format!("{}://{after}", scheme.to_ascii_lowercase()),
            None => base.to_string(),
        };
        let rest = if kept.is_empty() { base } else { format!("{base}?{}", kept.join("&")) };
        let mut config =
            Config::from_str(&rest).map_err(|e| invalid(format!("the store URL is not a valid PostgreSQL URL ({})", refusal(&e))))?;
        if config.get_hosts().is_empty() {
            return Err(invalid("the store URL names no host".to_string()));
        }
        // The driver reads these two differently from libpq, and would fail only at connect, as if
        // the server could not be reached: `?host=a,b` is one host named "a,b", and a `?port=`
        // is added after the ports of the hosts in the URL instead of replacing them.
        if config.get_hosts().iter().any(|host| matches!(host, tokio_postgres::config::Host::Tcp(name) if name.contains(','))) {
            return Err(invalid(
                "the store URL's host parameter lists several hosts: name them in the URL (postgres://user@h1:5432,h2:5432/db) or give each its own host= parameter".to_string(),
            ));
        }
        let (hosts, ports) = (config.get_hosts().len(), config.get_ports().len());
        if ports > 1 && ports != hosts {
            return Err(invalid(format!(
                "the store URL gives {ports} ports for {hosts} host(s): give each host its port in the URL (postgres://user@h1:5432,h2:5433/db), not a port= parameter beside them"
            )));
        }
        if config.get_user().is_none() {
            // As libpq: $PGUSER, else the operating system's user name.
            let user = std::env::var("PGUSER").or_else(|_| std::env::var("USER")).unwrap_or_else(|_| "postgres".to_string());
            config.user(user);
        }
        config.ssl_mode(match mode {
            TlsMode::Disable => SslMode::Disable,
            TlsMode::Prefer => SslMode::Prefer,
            _ => SslMode::Require,
        });
        config.connect_timeout(connect_timeout);
        config.keepalives(true);
        config.keepalives_idle(Duration::from_secs(5));
        config.tcp_user_timeout(statement_timeout);
        config.application_name("keygate");
        let name = describe(&config);
        let tls = MakeRustlsConnect::new(tls_config(mode.with_root(root_cert.as_deref()), root_cert.as_deref())?);
        Ok(Target { config, tls, name, connect_timeout, statement_timeout, begin: begin_bounded(statement_timeout) })
    }

    /// A driver error as a keygate error: the server's own refusals (a read-only
    /// server, a missing privilege) are `STORE_IO`; a lost or refused connection,
    /// including one the server ends (terminated, shutting down, starting up), is
    /// `STORE_UNAVAILABLE`.
    pub(super) fn error(&self, what: &str, e: &tokio_postgres::Error) -> Error {
        let code = match e.as_db_error().map(|db| db.code().code()) {
            Some(LOCK_NOT_AVAILABLE) => {
                // The server ended a lock wait (`begin`'s `lock_timeout`, or a smaller one set
                // for the role or database), on a connection that answered: unavailable, and
                // not worth an immediate second wait.
                return Error::gave_up_waiting(format!(
                    "{what} {}: waited the server's lock_timeout (at most {} ms) for a lock another connection holds",
                    self.name,
                    lock_wait(self.statement_timeout)
                ));
            }
            Some(NO_ROW_WRITTEN) => {
                return Error::new(
                    ErrorCode::StoreCorrupt,
                    format!(
                        "{what} {}: the write changed no row, or fewer than it should; a trigger (one returning NULL), rule or row-level security policy on the table drops keygate's writes, so nothing was committed",
                        self.name
                    ),
                );
            }
            Some(sqlstate) if is_schema_changed(sqlstate) => ErrorCode::StoreCorrupt,
            Some(sqlstate) if !is_connection_ended(sqlstate) => ErrorCode::StoreIo,
            None if wrong_type(e).is_some() => ErrorCode::StoreCorrupt,
            _ => ErrorCode::StoreUnavailable,
        };
        let detail = match (e.as_db_error(), wrong_type(e)) {
            (Some(db), _) => format!("{}: {}", db.code().code(), db.message()),
            (None, Some(wrong)) => format!("{e}: {wrong}"),
            (None, None) => with_causes(e),
        };
        Error::new(code, format!("{what} {}: {detail}", self.name))
    }
}

/// SQLSTATEs keygate's own statements meet only when its tables are no longer as it made
/// them (a table dropped or renamed, a column dropped or retyped, a primary key dropped after
/// the store opened): `42P01` undefined_table, `42703` undefined_column, `42804`
/// datatype_mismatch, `42883` undefined_function (an operator for the column's new type),
/// `42P10` invalid_column_reference (an `ON CONFLICT` with no unique index to match).
fn is_schema_changed(sqlstate: &str) -> bool {
    matches!(sqlstate, "42P01" | "42703" | "42804" | "42883" | "42P10")
}

/// A value of another type than its column's, refused by the driver before the server sees
/// it: keygate's statements send and read the types it made its columns with, so the column
/// was retyped after the store opened (the server's own refusals are [`is_schema_changed`]).
fn wrong_type(e: &tokio_postgres::Error) -> Option<&tokio_postgres::types::WrongType> {
    std::error::Error::source(e).and_then(|cause| cause.downcast_ref())
}

/// A driver error's text with its causes: the driver's own names only the kind of failure
/// (`error performing TLS handshake`, `error connecting to server`); its causes say why (`invalid
/// peer certificate: Expired`, `Connection refused`). They come from the socket and TLS, which
/// never see the URL's password. A cause that repeats the text before it is left out.
fn with_causes(e: &tokio_postgres::Error) -> String {
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        let shown = c.to_string();
        if !text.ends_with(&shown) {
            text.push_str(": ");
            text.push_str(&shown);
        }
        cause = c.source();
    }
    text
}

/// SQLSTATE `22012` division_by_zero: keygate divides only to refuse a write that changed
/// no row, or fewer than it should (`codec::one_row`, `codec::every_row`).
const NO_ROW_WRITTEN: &str = "22012";

/// SQLSTATE `55P03` lock_not_available: a lock wait ended by `lock_timeout`.
const LOCK_NOT_AVAILABLE: &str = "55P03";

/// SQLSTATEs of a connection the server ended or refused: `57P01` admin_shutdown
/// (pg_terminate_backend, a fast shutdown), `57P02` crash_shutdown, `57P03`
/// cannot_connect_now, `25P03` idle_in_transaction_session_timeout (see [`idle_in_write`]),
/// `57P05` idle_session_timeout, `53300` too_many_connections (the server's
/// `max_connections`, a role's or database's `CONNECTION LIMIT`: a connection refused until
/// another ends, as `57P03` is until the server has started), and class `08`, connection
/// exceptions.
fn is_connection_ended(sqlstate: &str) -> bool {
    matches!(sqlstate, "57P01" | "57P02" | "57P03" | "57P05" | "25P03" | "53300") || sqlstate.starts_with("08")
}

/// A URL split before its query, as the driver reads it: the credentials run to the first `@`,
/// so a `?` in a password starts no query (taken for one, its `sslmode=disable` would be read).
fn split_query(url: &str) -> (&str, &str) {
    let start = url.find("://").map_or(0, |i| i + 3);
    let after_credentials = url.get(start..).and_then(|rest| rest.find('@')).map_or(start, |i| start + i + 1);
    match url.get(after_credentials..).and_then(|rest| rest.find('?')) {
        Some(i) => (url.get(..after_credentials + i).unwrap_or(url), url.get(after_credentials + i + 1..).unwrap_or("")),
        None => (url, ""),
    }
}

/// libpq's connection keywords: an unknown option of this name is shown as it is, since it
/// cannot be a piece of a password.
const LIBPQ_KEYWORDS: &[&str] = &[
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "passfile",
    "require_auth",
    "channel_binding",
    "connect_timeout",
    "client_encoding",
    "options",
    "application_name",
    "fallback_application_name",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "tcp_user_timeout",
    "replication",
    "gssencmode",
    "sslmode",
    "sslnegotiation",
    "sslcompression",
    "sslcert",
    "sslkey",
    "sslpassword",
    "sslcertmode",
    "sslrootcert",
    "sslcrl",
    "sslcrldir",
    "sslsni",
    "requirepeer",
    "ssl_min_protocol_version",
    "ssl_max_protocol_version",
    "krbsrvname",
    "gsslib",
    "gssdelegation",
    "service",
    "target_session_attrs",
    "load_balance_hosts",
];

/// Why the driver refused a URL. Its causes name an option, or the one character it could not
/// take, never a whole value; but a password with an unencoded `&` (or `?` before the host) is
/// split there, and the driver reads the rest as an option whose name is a piece of the
/// password: an unknown option is named only when it is one of libpq's own.
fn refusal(e: &tokio_postgres::Error) -> String {
    let why = with_causes(e);
    match why.split_once("unknown option `").and_then(|(_, rest)| rest.split_once('`')) {
        Some((name, _)) if LIBPQ_KEYWORDS.contains(&name) => format!("libpq's option `{name}`, which keygate does not take"),
        Some(_) => "an unknown option, not named here as it may be a piece of a password: write & in a password as %26".to_string(),
        None => crate::error::redact_secrets(&why),
    }
}

/// A copy of `config` without its hosts, addresses and ports: every other setting kept.
fn without_hosts(config: &Config) -> Config {
    let mut copy = Config::new();
    if let Some(user) = config.get_user() {
        copy.user(user);
    }
    if let Some(password) = config.get_password() {
        copy.password(password);
    }
    if let Some(dbname) = config.get_dbname() {
        copy.dbname(dbname);
    }
    if let Some(options) = config.get_options() {
        copy.options(options);
    }
    if let Some(name) = config.get_application_name() {
        copy.application_name(name);
    }
    if let Some(timeout) = config.get_connect_timeout() {
        copy.connect_timeout(*timeout);
    }
    if let Some(timeout) = config.get_tcp_user_timeout() {
        copy.tcp_user_timeout(*timeout);
    }
    if let Some(interval) = config.get_keepalives_interval() {
        copy.keepalives_interval(interval);
    }
    if let Some(retries) = config.get_keepalives_retries() {
        copy.keepalives_retries(retries);
    }
    copy.ssl_mode(config.get_ssl_mode())
        .ssl_negotiation(config.get_ssl_negotiation())
        .keepalives(config.get_keepalives())
        .keepalives_idle(config.get_keepalives_idle())
        .target_session_attrs(config.get_target_session_attrs())
        .channel_binding(config.get_channel_binding())
        .load_balance_hosts(config.get_load_balance_hosts());
    copy
}

/// The port the driver connects to the config's host `i` on: its own, else the one port given, else 5432.
fn port_of(config: &Config, i: usize) -> u16 {
    let ports = config.get_ports();
    ports.get(i).or_else(|| ports.first()).copied().unwrap_or(5432)
}

/// `host:port/database` of a config; every host of a multi-host URL (`h1:5432,h2:5432`), each
/// with the port the driver gives it ([`port_of`]): a message
/// naming only the first would blame it for what another server answered (a replica reached
/// through `load_balance_hosts=random`, say).
fn describe(config: &Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let host = match host {
                tokio_postgres::config::Host::Tcp(host) => host.clone(),
                #[cfg(unix)]
                tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
            };
            format!("{host}:{}", port_of(config, i))
        })
        .collect();
    crate::error::visible(&format!("postgres://{}/{}", hosts.join(","), config.get_dbname().unwrap_or("")))
}

fn tls_config(mode: TlsMode, root_cert: Option<&str>) -> Result<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    if let Some(path) = root_cert {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect::<std::result::Result<Vec<_>, _>>())
            .map_err(|e| invalid(format!("cannot read the store URL's sslrootcert {path}: {e}")))?;
        for cert in certs {
            roots.add(cert).map_err(|e| invalid(format!("the store URL's sslrootcert {path} holds an unusable certificate: {e}")))?;
        }
    }
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::new(ErrorCode::Internal, format!("internal error: TLS setup failed: {e}")))?;
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| Error::new(ErrorCode::Internal, format!("internal error: TLS setup failed: {e}")))?;
    let verifier: Arc<dyn ServerCertVerifier> = match mode {
        TlsMode::VerifyFull => webpki,
        TlsMode::VerifyCa => Arc::new(ChainOnly { inner: webpki }),
        TlsMode::Disable | TlsMode::Prefer | TlsMode::Require => Arc::new(Unverified { provider }),
    };
    Ok(builder.dangerous().with_custom_certificate_verifier(verifier).with_no_client_auth())
}

/// `verify-ca`: the chain must lead to a trusted root; the name is not checked.
#[derive(Debug)]
struct ChainOnly {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. })) => {
                Ok(ServerCertVerified::assertion())
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// `prefer` and `require` (as libpq without a root certificate): encrypted, the
/// certificate not verified; the handshake's signatures still are.
#[derive(Debug)]
struct Unverified {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn require_with_a_root_certificate_checks_the_chain_as_libpq_does() {
        assert_eq!(TlsMode::Require.with_root(Some("/etc/ca.crt")), TlsMode::VerifyCa);
        assert_eq!(TlsMode::Require.with_root(None), TlsMode::Require);
        for mode in [TlsMode::Disable, TlsMode::Prefer, TlsMode::VerifyCa, TlsMode::VerifyFull] {
            assert_eq!(mode.with_root(Some("/etc/ca.crt")), mode);
        }
    }

    #[test]
    fn a_transaction_s_lock_waits_are_bounded_by_the_statement_timeout_and_never_unbounded() {
        assert_eq!(lock_wait(Duration::from_millis(5000)), 4500);
        // Below 50 ms the margin is 5 ms, and the wait never less than half the limit.
        assert_eq!(lock_wait(Duration::from_millis(30)), 25);
        assert_eq!(lock_wait(Duration::from_millis(8)), 4);
        assert_eq!(lock_wait(Duration::from_millis(1)), 1);
        // lock_timeout 0 would wait for ever.
        assert_eq!(lock_wait(Duration::from_micros(300)), 1);
    }

    #[test]
    fn begin_sets_both_bounds_for_the_transaction_only_keeping_a_stricter_one_the_session_has() {
        let begin = begin_bounded(Duration::from_millis(5000));
        assert!(begin.starts_with("BEGIN; SELECT "), "{begin}");
        assert!(begin.contains(&at_most("lock_timeout", 4500)), "{begin}");
        assert!(begin.contains(&at_most("idle_in_transaction_session_timeout", 20_000)), "{begin}");
        let bound = at_most("lock_timeout", 4500);
        // `true`: local to the transaction; `nullif(…, 0)`: a session without a bound takes ours.
        assert!(bound.ends_with(", 4500)::text, true)") && bound.contains("nullif("), "{bound}");
    }

    #[test]
    fn a_transaction_left_idle_is_ended_by_the_server_after_four_statement_timeouts_and_never_unbounded() {
        assert_eq!(idle_in_write(Duration::from_millis(5000)), 20_000);
        assert_eq!(idle_in_write(Duration::from_millis(60_000)), 240_000);
        // 0 would mean no limit.
        assert_eq!(idle_in_write(Duration::ZERO), 10_000);
        assert_eq!(idle_in_write(Duration::from_secs(3600)), 14_400_000);
        assert_eq!(idle_in_write(Duration::MAX), 2_147_483_647);
    }

    #[test]
    fn a_config_without_its_hosts_keeps_every_other_setting() {
        let timeout = Duration::from_millis(1000);
        let url = "postgres://u:p%40ss@db.example:5433,other.example:5434/keys?options=-c%20x%3D1&application_name=a&sslmode=require\
                   &sslnegotiation=direct&keepalives=0&keepalives_idle=7&tcp_user_timeout=9&target_session_attrs=read-write\
                   &channel_binding=require&load_balance_hosts=random&connect_timeout=3";
        let target = Target::parse(url, timeout, timeout).unwrap_or_else(|e| panic!("{}", e.message));
        let mut copy = without_hosts(&target.config);
        assert!(copy.get_hosts().is_empty() && copy.get_ports().is_empty());
        for (host, port) in [("db.example", 5433), ("other.example", 5434)] {
            copy.host(host).port(port);
        }
        assert!(copy == target.config, "a setting was lost: {copy:?} against {:?}", target.config);
    }

    #[test]
    fn host_names_are_looked_up_by_keygate_each_address_kept_beside_its_name() {
        let timeout = Duration::from_millis(5000);
        let target = Target::parse("postgres://u@localhost:5999/db", timeout, timeout).unwrap_or_else(|e| panic!("{}", e.message));
        let resolved = target.resolved(timeout).unwrap_or_else(|e| panic!("{}", e.message));
        let addresses = resolved.get_hostaddrs();
        assert!(!addresses.is_empty() && addresses.iter().all(|a| a.is_loopback()), "{addresses:?}");
        assert_eq!(resolved.get_hosts().len(), addresses.len());
        assert!(resolved.get_ports().iter().all(|&port| port == 5999));
        // Nothing to look up: the config as parsed.
        for url in ["postgres://u@127.0.0.1:5999/db", "postgres://u@[::1]/db", "postgres://u@h/db?hostaddr=127.0.0.1"] {
            let target = Target::parse(url, timeout, timeout).unwrap_or_else(|e| panic!("{url}: {}", e.message));
            assert!(matches!(target.resolved(timeout), Ok(std::borrow::Cow::Borrowed(_))), "{url}");
        }
        let unknown = Target::parse("postgres://u@no-such-host.invalid/db", timeout, timeout).unwrap_or_else(|e| panic!("{}", e.message));
        let err = unknown.resolved(timeout).err().unwrap_or_else(|| panic!("an unknown host was resolved"));
        assert_eq!(err.code, ErrorCode::StoreUnavailable, "{}", err.message);
        // Refused by the resolver, or (a machine whose DNS does not answer) not within the limit.
        assert!(
            err.message.contains("cannot look up no-such-host.invalid") || err.message.contains("(looking up its host name)"),
            "{}",
            err.message
        );
    }

    #[test]
    fn a_url_s_scheme_is_read_in_any_case() {
        let timeout = Duration::from_millis(1000);
        for url in ["postgres://u@h/db", "POSTGRES://u@h/db", "PostgreSQL://u@h/db?sslmode=disable"] {
            let target = Target::parse(url, timeout, timeout).unwrap_or_else(|e| panic!("{url}: {}", e.message));
            assert_eq!(target.config.get_dbname(), Some("db"), "{url}");
        }
    }

    #[test]
    fn a_url_the_driver_refuses_is_refused_saying_why_never_with_a_secret() {
        let timeout = Duration::from_millis(1000);
        let secret = format!("kg_{}", "A".repeat(49));
        for (url, why) in [
            ("postgres://u@h/db?sslcert=client.crt".to_string(), "libpq's option `sslcert`, which keygate does not take"),
            ("postgres://u@h/db?foo=bar".to_string(), "an unknown option, not named here"),
            ("postgres://u@h:99999/db".to_string(), "invalid value for option `port`"),
            (format!("postgres://u@h/db?{secret}=1"), "an unknown option, not named here"),
        ] {
            let Err(e) = Target::parse(&url, timeout, timeout) else { panic!("{url} was taken") };
            assert_eq!(e.code, ErrorCode::InvalidArgument, "{url}");
            assert!(e.message.contains(why), "{url}: {}", e.message);
            assert!(!e.message.contains(&secret[3..20]), "{}", e.message);
        }
    }

    #[test]
    fn an_unencoded_ampersand_in_a_query_password_is_not_shown_as_an_unknown_option() {
        let timeout = Duration::from_millis(1000);
        // The driver splits the value at `&`, and reads `Qz9Pw` as an option's name.
        for url in ["postgres://u@h/db?password=Xy7&Qz9Pw=rest", "postgres://u@h/db?Qz9Pw=rest&pass%77ord=Xy7"] {
            let Err(e) = Target::parse(url, timeout, timeout) else { panic!("{url} was taken") };
            assert_eq!(e.code, ErrorCode::InvalidArgument, "{url}");
            assert!(!e.message.contains("Qz9Pw"), "{url}: {}", e.message);
            assert!(e.message.contains("unknown option"), "{url}: {}", e.message);
        }
    }

    #[test]
    fn a_question_mark_in_a_password_starts_no_query() {
        let timeout = Duration::from_millis(1000);
        for (url, password, mode) in [
            ("postgres://u:x?sslmode=disable@h/db", "x?sslmode=disable", SslMode::Prefer),
            ("postgres://u:x?sslmode=disable&y@h/db?sslmode=require", "x?sslmode=disable&y", SslMode::Require),
            ("postgres://u@h/db?application_name=a", "", SslMode::Prefer),
        ] {
            let target = Target::parse(url, timeout, timeout).unwrap_or_else(|e| panic!("{url}: {}", e.message));
            assert_eq!(target.config.get_password().unwrap_or_default(), password.as_bytes(), "{url}");
            assert_eq!(target.config.get_ssl_mode(), mode, "{url}");
            assert_eq!(target.config.get_dbname(), Some("db"), "{url}");
        }
    }

    #[test]
    fn hosts_and_ports_the_driver_would_misread_are_refused_at_once() {
        let timeout = Duration::from_millis(1000);
        for url in ["postgres://u@/db?host=h1,h2", "postgres://u@h1/db?port=5433", "postgres://u@h1,h2/db?port=5433,5434"] {
            let error = Target::parse(url, timeout, timeout).err().unwrap_or_else(|| panic!("{url} was taken"));
            assert_eq!(error.code, ErrorCode::InvalidArgument, "{url}: {}", error.message);
        }
        for url in [
            "postgres://u@/db?host=h1&port=5433",
            "postgres://u@/db?host=h1&host=h2&port=5433",
            "postgres://u@/db?host=/run/postgresql&port=5433",
        ] {
            assert!(Target::parse(url, timeout, timeout).is_ok(), "{url}");
        }
    }

    #[test]
    fn a_multi_host_url_is_named_with_every_host_not_only_the_first() {
        let timeout = Duration::from_millis(1000);
        for (url, name) in [
            ("postgres://u@h1:5433,h2:5434/db?target_session_attrs=read-write", "postgres://h1:5433,h2:5434/db"),
            ("postgres://u@h1,h2:5434/db", "postgres://h1:5432,h2:5434/db"),
            ("postgres://u:pw@h1:6000/db", "postgres://h1:6000/db"),
            ("postgres://u@h1/db", "postgres://h1:5432/db"),
        ] {
            let target = Target::parse(url, timeout, timeout).unwrap_or_else(|e| panic!("{url}: {}", e.message));
            assert_eq!(target.name, name, "{url}");
        }
    }

    #[test]
    fn a_connection_refused_for_too_many_connections_is_unavailable_not_a_refusal_of_the_write() {
        // The server's max_connections or a role's CONNECTION LIMIT: retried like a lost connection,
        // 503 from the admin API; the server's other resource errors (disk full) stay STORE_IO.
        assert!(is_connection_ended("53300"));
        for sqlstate in ["53100", "53200", "53400"] {
            assert!(!is_connection_ended(sqlstate), "{sqlstate}");
        }
    }

    #[test]
    fn a_session_the_server_ended_for_idling_is_a_lost_connection() {
        for sqlstate in ["25P03", "57P05", "57P01", "08006"] {
            assert!(is_connection_ended(sqlstate), "{sqlstate}");
        }
        for sqlstate in ["25P02", "55P03", "42501", "23505"] {
            assert!(!is_connection_ended(sqlstate), "{sqlstate}");
        }
    }
}
