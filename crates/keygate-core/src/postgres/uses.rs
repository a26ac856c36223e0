//! `lastUsedAt` written for a batch of keys. Processes flush the same keys at the
//! same moments, so the rows are locked in one order (by id, `FOR UPDATE`) before
//! they are updated: two flushes then queue rather than deadlock. A conflict with
//! an admin write (which locks the rows it changes in its own order) is retried once.

use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::Client;

use super::Net;
use crate::error::{Error, ErrorCode, Result};

const LOCK: &str = "SELECT 1 FROM keygate_keys WHERE id = ANY($1::bytea[]) ORDER BY id FOR UPDATE";
const UPDATE: &str = "UPDATE keygate_keys k SET last_used_at = GREATEST(k.last_used_at, u.at)
     FROM unnest($1::bytea[], $2::bigint[]) AS u(id, at) WHERE k.id = u.id";

/// Writes the latest use of each key (the uses in any order, a key possibly more than once).
pub(super) fn record(net: &Net, client: &Client, uses: &[([u8; 16], i64)]) -> Result<()> {
    let mut ordered = uses.to_vec();
    // By id, the latest use of a key first: `dedup` keeps it.
    ordered.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    ordered.dedup_by_key(|(id, _)| *id);
    let ids: Vec<Vec<u8>> = ordered.iter().map(|(id, _)| id.to_vec()).collect();
    let ats: Vec<i64> = ordered.iter().map(|(_, at)| *at).collect();
    match attempt(net, client, &ids, &ats) {
        Err(Some(e)) if is_conflict(&e) => attempt(net, client, &ids, &ats),
        done => done,
    }
    .map_err(|e| match e {
        Some(e) => net.target.error("recording key use in", &e),
        None => Error::new(
            ErrorCode::StoreUnavailable,
            format!("recording key use in {}: no answer within {} ms", net.target.name, net.target.statement_timeout.as_millis()),
        ),
    })
}

fn is_conflict(e: &tokio_postgres::Error) -> bool {
    e.code().is_some_and(|code| *code == SqlState::T_R_DEADLOCK_DETECTED || *code == SqlState::T_R_SERIALIZATION_FAILURE)
}

/// One transaction, its statements prepared first and then sent together with the
/// COMMIT, so that whatever happens to this call (an error, the timeout) the
/// transaction ends on the server. `Err(None)`: no answer within the statement timeout.
fn attempt(net: &Net, client: &Client, ids: &[Vec<u8>], ats: &[i64]) -> std::result::Result<(), Option<tokio_postgres::Error>> {
    let limit = net.target.statement_timeout;
    let run = async {
        let (lock, update) = tokio::try_join!(client.prepare(LOCK), client.prepare(UPDATE))?;
        let (lock_params, update_params): ([&(dyn ToSql + Sync); 1], [&(dyn ToSql + Sync); 2]) = ([&ids], [&ids, &ats]);
        // Every answer awaited, and the first statement's error told: once one fails, the server
        // refuses the rest (`25P02`, "current transaction is aborted"), and `try_join!` told
        // whichever failure it polled first. A role granted only SELECT saw that instead of the
        // cause (`42501: permission denied for table keygate_keys`) in about one flush in six.
        let (begun, locked, updated, committed) = tokio::join!(
            client.batch_execute(&net.target.begin),
            client.query(&lock, &lock_params),
            client.execute(&update, &update_params),
            client.batch_execute("COMMIT")
        );
        begun?;
        locked?;
        updated?;
        committed?;
        Ok::<_, tokio_postgres::Error>(())
    };
    match net.rt.block_on(async { tokio::time::timeout(limit, run).await }) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(Some(e)),
        Err(_) => Err(None),
    }
}
