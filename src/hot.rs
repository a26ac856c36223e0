//! The per-call path: `check` and `explain`. Arguments are read straight into
//! stack buffers with one napi call each; a string too long for its buffer is
//! read as longer than any valid value, so truncation never changes an answer.

use std::ffi::c_char;

use keygate_core::secret::MAX_SECRET_LEN;
use keygate_core::glob::MAX_NAME_LEN;
use keygate_core::{Call, KeyStore, Verdict};
use napi::bindgen_prelude::{External, Unknown};
use napi::{sys, JsValue};
use napi_derive::napi;

use crate::convert::ExplanationDto;

/// Slack beyond the longest valid value: napi writes whole characters only (up
/// to 4 bytes) and keeps one byte for a NUL, so any string longer than the
/// longest valid value still reads as longer than it, never as a valid prefix.
const SLACK: usize = 6;
const SECRET_BUF: usize = MAX_SECRET_LEN + SLACK;
const NAME_BUF: usize = MAX_NAME_LEN + SLACK;
/// The longest textual IPv6 address with an IPv4 tail is 45 bytes.
const IP_BUF: usize = 45 + SLACK;

/// Reads a JS string as UTF-8 into `buf`; `Err` when the value is not a string.
fn read<'b>(value: &Unknown, buf: &'b mut [u8]) -> Result<&'b [u8], ()> {
    let raw = value.value();
    let mut len = 0usize;
    // SAFETY: `buf` is writable for `buf.len()` bytes; napi writes at most that many, NUL included.
    let status = unsafe {
        sys::napi_get_value_string_utf8(raw.env, raw.value, buf.as_mut_ptr() as *mut c_char, buf.len(), &mut len)
    };
    if status == sys::Status::napi_ok {
        Ok(&buf[..len])
    } else {
        Err(())
    }
}

/// Runs `f` over the call read from the four arguments; a non-string argument
/// throws a `TypeError` (`index.js` checks types first, so this guards direct use).
fn with_call<R>(
    secret: Unknown,
    service: Unknown,
    api: Unknown,
    ip: Option<Unknown>,
    f: impl FnOnce(Call<'_>) -> R,
) -> napi::Result<R> {
    let (mut s, mut sv, mut a, mut i) = ([0u8; SECRET_BUF], [0u8; NAME_BUF], [0u8; NAME_BUF], [0u8; IP_BUF]);
    let type_error = || napi::Error::new(napi::Status::StringExpected, "secret, service, api and ip must be strings");
    let secret = read(&secret, &mut s).map_err(|_| type_error())?;
    let service = read(&service, &mut sv).map_err(|_| type_error())?;
    let api = read(&api, &mut a).map_err(|_| type_error())?;
    let ip = match ip {
        Some(ip) => Some(read(&ip, &mut i).map_err(|_| type_error())?),
        None => None,
    };
    Ok(f(Call { secret, service, api, ip }))
}

/// Packs a verdict into one number: bits 0–7 the reason, bit 8 "known key",
/// bit 9 "depends on the caller's IP". `index.js` decodes it.
fn pack(verdict: Verdict) -> u32 {
    verdict.reason as u32 | (verdict.known_key as u32) << 8 | (verdict.ip_dependent as u32) << 9
}

/// The store behind a handle made by `storeInMemory`/`storeOpen`. Read by hand
/// rather than as a `&External` parameter: the generated borrow tracking for
/// reference parameters costs more than the rest of a check's crossing.
fn store_of(handle: &Unknown) -> napi::Result<&'static KeyStore> {
    let raw = handle.value();
    let mut data = std::ptr::null_mut();
    // SAFETY: napi only writes the external's data pointer; `inner_from_raw` checks it is ours.
    let status = unsafe { sys::napi_get_value_external(raw.env, raw.value, &mut data) };
    if status != sys::Status::napi_ok {
        return Err(napi::Error::new(napi::Status::InvalidArg, "not a keygate store handle"));
    }
    // SAFETY: `inner_from_raw` only dereferences pointers registered as `External<KeyStore>`.
    unsafe { External::<KeyStore>::inner_from_raw(data) }
        .ok_or_else(|| napi::Error::new(napi::Status::InvalidArg, "not a keygate store handle"))
}

#[napi]
pub fn check(store: Unknown, secret: Unknown, service: Unknown, api: Unknown, ip: Option<Unknown>) -> napi::Result<u32> {
    let store = store_of(&store)?;
    with_call(secret, service, api, ip, |call| pack(store.check(call)))
}

#[napi]
pub fn explain(
    store: &External<KeyStore>,
    secret: Unknown,
    service: Unknown,
    api: Unknown,
    ip: Option<Unknown>,
) -> napi::Result<ExplanationDto> {
    with_call(secret, service, api, ip, |call| store.explain(call).into())
}

/// Records uses of keys answered by the JavaScript memo (for `lastUsedAt`).
#[napi]
pub fn touch(store: &External<KeyStore>, secrets: Vec<String>, times: Vec<f64>) {
    let uses: Vec<(&[u8], i64)> = secrets.iter().zip(&times).map(|(s, &t)| (s.as_bytes(), t as i64)).collect();
    store.touch(&uses);
}

