//! The per-call path: `check`, `explain` and `explainKey`, and their WebDAV twins
//! `checkDav`, `explainDav` and `explainKeyDav`. Arguments are read straight into
//! stack buffers with one napi call each (buffers left uninitialised: only what napi
//! writes is read); a string too long for its buffer is read as longer than any valid
//! value, so truncation never changes an answer.

use std::ffi::{c_void, CStr, CString};
use std::io::Write;
use std::mem::MaybeUninit;

use keygate_core::memo;
use keygate_core::{
    redact_secrets, Call, DavCall, KeyStore, PendingCheck, Signals, AFTER_PREFIX_LEN, MAX_DAV_METHOD_LEN, MAX_DAV_PATH_LEN, MAX_NAME_LEN,
    MAX_SECRET_LEN,
};
use napi::bindgen_prelude::{External, Object, Unknown};
use napi::{sys, JsValue};
use napi_derive::napi;

use crate::convert::ExplanationDto;

/// Slack beyond the longest valid value, more than the one unit napi keeps for
/// a NUL: any string longer than the longest valid value still reads as longer
/// than it, never as a valid prefix.
const SLACK: usize = 6;
const SECRET_BUF: usize = MAX_SECRET_LEN + SLACK;
const NAME_BUF: usize = MAX_NAME_LEN + SLACK;
const METHOD_BUF: usize = MAX_DAV_METHOD_LEN + SLACK;
/// A WebDAV path may carry one leading `/` beyond its longest valid length.
const PATH_BUF: usize = MAX_DAV_PATH_LEN + 1 + SLACK;
/// The longest textual IPv6 address with an IPv4 tail is 45 bytes; a zone after
/// it (`%eth0`) is read far enough to see that it is there.
const IP_BUF: usize = 45 + SLACK;

/// What every UTF-16 unit from `0x7F` up reads as: DEL, a byte no valid secret,
/// name, method, path or address holds, as none holds a non-ASCII character (or
/// DEL). In an IPv6 zone, where anything goes, it is as good as the character.
const NOT_ASCII: u8 = 0x7F;

/// A stack buffer for one string argument: the UTF-16 units napi writes, and the
/// bytes they narrow to. Neither is zeroed first (only what napi writes is read).
///
/// UTF-16 rather than UTF-8: V8 widens a one-byte string into it for about two
/// thirds of what its UTF-8 encoder costs (callgrind). Every valid value is ASCII,
/// so narrowing each other unit to [`NOT_ASCII`] gives every answer UTF-8 would.
/// (Latin-1 would be cheaper still, but V8 writes a two-byte character as its low
/// byte, so `Ł` would read as `A`.)
struct Buf<const N: usize> {
    units: [MaybeUninit<u16>; N],
    bytes: [MaybeUninit<u8>; N],
}

impl<const N: usize> Buf<N> {
    const fn new() -> Self {
        Buf { units: [MaybeUninit::uninit(); N], bytes: [MaybeUninit::uninit(); N] }
    }

    /// Reads a JS string, its first `N - 1` units at most, as bytes; `None` when
    /// `value` is not a string.
    fn read(&mut self, env: sys::napi_env, value: sys::napi_value) -> Option<&[u8]> {
        let mut len = 0usize;
        // SAFETY: `units` is writable for `N` units; napi writes at most that many, NUL included.
        let status = unsafe { sys::napi_get_value_string_utf16(env, value, self.units.as_mut_ptr().cast::<u16>(), N, &mut len) };
        // napi keeps a unit for the NUL, so `len < N`; anything else is refused, not trusted.
        if status != sys::Status::napi_ok || len >= N {
            return None;
        }
        // SAFETY: napi has written the string's first `len` units at the start of `units`.
        let units = unsafe { std::slice::from_raw_parts(self.units.as_ptr().cast::<u16>(), len) };
        let bytes = self.bytes.get_mut(..len)?;
        narrow(units, bytes);
        // SAFETY: `narrow` has written the first `len` bytes.
        Some(unsafe { std::slice::from_raw_parts(self.bytes.as_ptr().cast::<u8>(), len) })
    }
}

/// Writes each of `units` into `bytes` (as long) as its byte, [`NOT_ASCII`] if
/// it has none. Strings here are short, so a scalar tail would cost more than
/// the vector steps: the widest step that fits is taken, its last one
/// overlapping the one before.
fn narrow(units: &[u16], bytes: &mut [MaybeUninit<u8>]) {
    match units.len() {
        16.. => narrow_by::<16>(units, bytes),
        8.. => narrow_by::<8>(units, bytes),
        4.. => narrow_by::<4>(units, bytes),
        _ => narrow_by::<1>(units, bytes),
    }
}

/// [`narrow`], `W` units a step, the last step ending at the last unit;
/// writes nothing when there are fewer than `W` (or `bytes` is not as long as `units`).
#[inline(always)]
fn narrow_by<const W: usize>(units: &[u16], bytes: &mut [MaybeUninit<u8>]) {
    if units.len() != bytes.len() {
        return;
    }
    for (to, from) in bytes.chunks_exact_mut(W).zip(units.chunks_exact(W)) {
        narrow_step(to, from);
    }
    if let (Some(to), Some(from)) = (bytes.last_chunk_mut::<W>(), units.last_chunk::<W>()) {
        narrow_step(to, from);
    }
}

#[inline(always)]
fn narrow_step(to: &mut [MaybeUninit<u8>], from: &[u16]) {
    for (byte, &unit) in to.iter_mut().zip(from) {
        // `min` leaves a value below 0x80: the cast keeps it whole.
        byte.write(unit.min(u16::from(NOT_ASCII)) as u8);
    }
}

/// Reads a JS string into `buf` (see [`Buf::read`]); `Err` when the value is not a string.
fn read<'b, const N: usize>(value: &Unknown, buf: &'b mut Buf<N>) -> Result<&'b [u8], ()> {
    let raw = value.value();
    buf.read(raw.env, raw.value).ok_or(())
}

/// The raw arguments of a request: the secret, two names (service and api, or
/// method and path), the caller address.
struct Args<'b> {
    secret: &'b [u8],
    first: &'b [u8],
    second: &'b [u8],
    ip: Option<&'b [u8]>,
}

/// Runs `f` over the request read from the arguments (no secret: an empty one,
/// for `explainKey`); a non-string argument throws a `TypeError` naming them
/// (`lib/store.js` checks types first, so this guards direct use).
fn with_args<const N1: usize, const N2: usize, R>(
    names: &str,
    secret: Option<Unknown>,
    [first_value, second_value]: [Unknown; 2],
    ip: Option<Unknown>,
    f: impl FnOnce(Args<'_>) -> R,
) -> napi::Result<R> {
    let (mut s, mut first, mut second, mut i) = (Buf::<SECRET_BUF>::new(), Buf::<N1>::new(), Buf::<N2>::new(), Buf::<IP_BUF>::new());
    let type_error = || napi::Error::new(napi::Status::StringExpected, format!("{names} must be strings"));
    let secret = match secret {
        Some(secret) => read(&secret, &mut s).map_err(|_| type_error())?,
        None => b"",
    };
    let first = read(&first_value, &mut first).map_err(|_| type_error())?;
    let second = read(&second_value, &mut second).map_err(|_| type_error())?;
    let ip = match ip {
        Some(ip) => Some(read(&ip, &mut i).map_err(|_| type_error())?),
        None => None,
    };
    Ok(f(Args { secret, first, second, ip }))
}

fn api_call(args: Args<'_>) -> Call<'_> {
    Call { secret: args.secret, service: args.first, api: args.second, ip: args.ip }
}

fn dav_call(args: Args<'_>) -> DavCall<'_> {
    DavCall { secret: args.secret, method: args.first, path: args.second, ip: args.ip }
}

// The memo contract (`keygate_core::memo`), for `lib/memo.js` and `lib/store.js`.

/// Index of the generation word in `storeSignals`' words: it changes whenever any decision may have.
#[napi]
pub const GENERATION_WORD: u32 = memo::GENERATION_WORD;
/// Index of the flags word in `storeSignals`' words: while non-zero, the memo is off.
#[napi]
pub const FLAGS_WORD: u32 = memo::FLAGS_WORD;
/// Flags bit: the store cannot vouch that it is current (checks answer `store_unavailable`).
#[napi]
pub const FLAG_STORE_UNAVAILABLE: u32 = Signals::STORE_UNAVAILABLE;
/// Flags bit: the expiry watch is not running (nothing may be remembered).
#[napi]
pub const FLAG_MEMO_UNSAFE: u32 = Signals::MEMO_UNSAFE;
/// `check`'s packed verdict, bits 0–7: the reason code (an index into the values of `Reason`).
#[napi]
pub const VERDICT_REASON_MASK: u32 = memo::VERDICT_REASON_MASK;
/// `check`'s packed verdict: the secret is a key's.
#[napi]
pub const VERDICT_KNOWN_KEY: u32 = memo::VERDICT_KNOWN_KEY;
/// `check`'s packed verdict: the key has IP rules; the answer holds for this caller address only.
#[napi]
pub const VERDICT_DEPENDS_ON_IP: u32 = memo::VERDICT_DEPENDS_ON_IP;
/// `check`'s packed verdict: do not remember (the key expires within the memo's horizon).
#[napi]
pub const VERDICT_TRANSIENT: u32 = memo::VERDICT_TRANSIENT;
/// `check`'s packed verdict: do not remember (the key's first check since it was created, loaded or changed).
#[napi]
pub const VERDICT_FIRST_CHECK: u32 = memo::VERDICT_FIRST_CHECK;
/// The base62 digits in order: a secret's last four characters, read as digits, number its hint-filter bit.
#[napi]
pub const HINT_DIGITS: &str = memo::hints::HINT_DIGITS;
/// Longest service or API name a valid call can carry.
#[napi]
pub const MAX_NAME_LENGTH: u32 = MAX_NAME_LEN as u32;
/// Longest WebDAV request path a valid request can carry (besides one leading `/`).
#[napi]
pub const MAX_DAV_PATH_LENGTH: u32 = MAX_DAV_PATH_LEN as u32;
/// Characters of a secret after its prefix (`_` and the body).
#[napi]
pub const SECRET_AFTER_PREFIX_LENGTH: u32 = AFTER_PREFIX_LEN as u32;

/// `check(store, secret, service, api, ip?)` → the packed verdict, registered as
/// a plain napi callback rather than through `#[napi]`: the generated wrapper
/// keeps a borrow scope per call (thread-local bookkeeping, an allocation)
/// that costs about a tenth of a first check, and this function borrows
/// nothing past its return. A non-store handle or non-string argument throws.
/// A panic throws an `INTERNAL` error (see `guard`) instead of aborting Node.
unsafe extern "C" fn check_callback(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    // SAFETY: `env` and `info` come from this napi callback.
    guard(env, || unsafe { check::<NAME_BUF, NAME_BUF, _>(env, info, Store::Argument, API_ARGS, KeyStore::begin_check, decide_api) })
}

/// `checkDav(store, secret, method, path, ip?)` → the packed verdict of a
/// WebDAV request; as `check_callback`.
unsafe extern "C" fn check_dav_callback(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    // SAFETY: `env` and `info` come from this napi callback.
    guard(env, || unsafe { check::<METHOD_BUF, PATH_BUF, _>(env, info, Store::Argument, DAV_ARGS, KeyStore::begin_check, decide_dav) })
}

/// What a bound function does (`BOUND_*`), a const parameter of [`bind_callback`] and
/// [`bound_callback`]: one pair of callbacks serves them all.
const BOUND_CHECK: u8 = 0;
const BOUND_CHECK_DAV: u8 = 1;
/// The benchmark's floor (`bench/miss.mjs`): the bound check's crossing with no decision,
/// answering 0 once the three strings are read as a check reads them.
const BOUND_READ_FLOOR: u8 = 2;
/// The benchmark's floor: the same, and the check begun and the key found (steps 1–2),
/// answering 1 when the secret names a key. With [`BOUND_READ_FLOOR`] it measures what
/// every check spends before deciding anything.
const BOUND_FIND_FLOOR: u8 = 3;

/// `bindCheck(store)` → `check` bound to the store: `(secret, service, api, ip?)` →
/// the packed verdict. The function holds its own handle on the store (dropped when
/// V8 collects it), so a call reads no store argument: no external to unwrap and
/// vouch for, one argument fewer. `bindCheckDav(store)` binds `checkDav` so;
/// `bindReadFloorForBench` and `bindFindFloorForBench` bind the benchmark's floors
/// (not part of the API).
unsafe extern "C" fn bind_callback<const WHAT: u8>(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    let name = match WHAT {
        BOUND_CHECK => c"check",
        BOUND_CHECK_DAV => c"checkDav",
        BOUND_READ_FLOOR => c"readFloor",
        _ => c"findFloor",
    };
    // SAFETY: `env` and `info` come from this napi callback.
    guard(env, || unsafe { bind(env, info, name, bound_callback::<WHAT>) })
}

unsafe extern "C" fn bound_callback<const WHAT: u8>(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    // SAFETY: `env` and `info` come from this napi callback of a function `bind` made.
    guard(env, || unsafe {
        match WHAT {
            BOUND_CHECK => check::<NAME_BUF, NAME_BUF, _>(env, info, Store::Bound, API_ARGS, KeyStore::begin_check, decide_api),
            BOUND_CHECK_DAV => check::<METHOD_BUF, PATH_BUF, _>(env, info, Store::Bound, DAV_ARGS, KeyStore::begin_check, decide_dav),
            BOUND_READ_FLOOR => check::<NAME_BUF, NAME_BUF, _>(env, info, Store::Bound, API_ARGS, |_, _| (), |(), _| 0),
            _ => check::<NAME_BUF, NAME_BUF, _>(env, info, Store::Bound, API_ARGS, KeyStore::begin_check, |pending, args| {
                u32::from(pending.finds_key(args.secret))
            }),
        }
    })
}

/// Makes a function named `name` calling `callback` with a clone of the store
/// given as the only argument as its data; the clone is dropped with the function.
///
/// # Safety
/// `env` and `info` come from the current napi callback.
unsafe fn bind(env: sys::napi_env, info: sys::napi_callback_info, name: &CStr, callback: RawCallback) -> sys::napi_value {
    let mut argc = 1usize;
    let mut argv: [sys::napi_value; 1] = [std::ptr::null_mut()];
    // SAFETY: `argv` has room for `argc` values.
    let status = unsafe { sys::napi_get_cb_info(env, info, &mut argc, argv.as_mut_ptr(), std::ptr::null_mut(), std::ptr::null_mut()) };
    // SAFETY: `env` and `argv[0]` come from this callback's own `napi_get_cb_info`.
    let Some(store) = (status == sys::Status::napi_ok).then(|| unsafe { store_from_raw(env, argv[0]) }).flatten() else {
        return throw_type_error(env, c"not a keygate store handle");
    };
    let data = Box::into_raw(Box::new(store.clone())).cast::<c_void>();
    let mut function = std::ptr::null_mut();
    // SAFETY: plain napi calls; `data` outlives the function (freed by its finalizer,
    // or here when the function could not be made or given the finalizer, and so was
    // never handed out).
    unsafe {
        let made = sys::napi_create_function(env, name.as_ptr(), name.count_bytes() as isize, Some(callback), data, &mut function);
        if made != sys::Status::napi_ok
            || sys::napi_add_finalizer(env, function, data, Some(drop_bound_store), std::ptr::null_mut(), std::ptr::null_mut())
                != sys::Status::napi_ok
        {
            drop(Box::from_raw(data.cast::<KeyStore>()));
            return throw_type_error(env, c"cannot bind a check to the store");
        }
    }
    function
}

/// Finalizer of a bound check: drops its clone of the store.
unsafe extern "C" fn drop_bound_store(_env: sys::napi_env, data: *mut c_void, _hint: *mut c_void) {
    // SAFETY: `data` is the `Box<KeyStore>` `bind` leaked for this function, finalized once.
    drop(unsafe { Box::from_raw(data.cast::<KeyStore>()) });
}

/// Where a check finds its store: its first argument (`check`), or the data it was bound to (`bindCheck`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Store {
    Argument,
    Bound,
}

fn decide_api(pending: PendingCheck<'_>, args: Args<'_>) -> u32 {
    pending.check(api_call(args)).pack()
}

fn decide_dav(pending: PendingCheck<'_>, args: Args<'_>) -> u32 {
    pending.check_dav(dav_call(args)).pack()
}

/// What a non-string argument of an API check throws (a TypeError).
const API_ARGS: &CStr = c"secret, service, api and ip must be strings";
/// What a non-string argument of a WebDAV check throws (a TypeError).
const DAV_ARGS: &CStr = c"secret, method, path and ip must be strings";

/// The body of the check callbacks: reads the store (see [`Store`]) and the
/// request (names into buffers of `N1` and `N2` bytes), answers `decide`'s number.
/// The check begins (`begin`: [`KeyStore::begin_check`]) as soon as the secret is read,
/// so that reading the names overlaps the key table's load from memory.
///
/// # Safety
/// `env` and `info` come from the current napi callback; for `Store::Bound`, of a function `bind` made.
// Inlined into each callback: shared by two, it would stay a call (17 instructions more a
// check under callgrind).
#[inline(always)]
unsafe fn check<const N1: usize, const N2: usize, P>(
    env: sys::napi_env,
    info: sys::napi_callback_info,
    from: Store,
    type_message: &CStr,
    begin: impl FnOnce(&'static KeyStore, &[u8]) -> P,
    decide: impl FnOnce(P, Args<'_>) -> u32,
) -> sys::napi_value {
    let mut argc = 5usize;
    let mut argv: [sys::napi_value; 5] = [std::ptr::null_mut(); 5];
    let mut data = std::ptr::null_mut();
    // SAFETY: `argv` has room for `argc` values; napi fills missing ones with `undefined`.
    let status = unsafe { sys::napi_get_cb_info(env, info, &mut argc, argv.as_mut_ptr(), std::ptr::null_mut(), &mut data) };
    if status != sys::Status::napi_ok {
        return throw_type_error(env, c"check: cannot read the arguments");
    }
    let (store, [secret, first, second, ip]) = match from {
        // SAFETY: a bound function's data is the `Box<KeyStore>` `bind` made, alive while the function is.
        Store::Bound => (unsafe { data.cast::<KeyStore>().as_ref() }, [argv[0], argv[1], argv[2], argv[3]]),
        // SAFETY: `env` and `argv[0]` come from this callback's own `napi_get_cb_info`.
        Store::Argument => (unsafe { store_from_raw(env, argv[0]) }, [argv[1], argv[2], argv[3], argv[4]]),
    };
    let Some(store) = store else {
        return throw_type_error(env, c"not a keygate store handle");
    };
    let args_given = if from == Store::Bound { argc + 1 } else { argc };
    let (mut s, mut n1, mut n2, mut i) = (Buf::<SECRET_BUF>::new(), Buf::<N1>::new(), Buf::<N2>::new(), Buf::<IP_BUF>::new());
    let type_error = || throw_type_error(env, type_message);
    let Some(secret) = s.read(env, secret) else {
        return type_error();
    };
    let pending = begin(store, secret);
    let (Some(first), Some(second)) = (n1.read(env, first), n2.read(env, second)) else {
        return type_error();
    };
    // Read first, its type asked only when it is not a string: an address is the usual case.
    let ip = if args_given < 5 {
        None
    } else {
        match i.read(env, ip) {
            Some(ip) => Some(ip),
            None if is_nullish(env, ip) => None,
            None => return type_error(),
        }
    };
    let packed = decide(pending, Args { secret, first, second, ip });
    let mut result = std::ptr::null_mut();
    // SAFETY: plain napi call with a valid env and out pointer.
    if unsafe { sys::napi_create_uint32(env, packed, &mut result) } != sys::Status::napi_ok {
        return std::ptr::null_mut();
    }
    result
}

fn is_nullish(env: sys::napi_env, value: sys::napi_value) -> bool {
    let mut kind = sys::ValueType::napi_undefined;
    // SAFETY: plain napi call with a valid env and out pointer.
    let status = unsafe { sys::napi_typeof(env, value, &mut kind) };
    status == sys::Status::napi_ok && (kind == sys::ValueType::napi_undefined || kind == sys::ValueType::napi_null)
}

/// The store behind a raw handle value, if it is one of ours.
///
/// # Safety
/// `env` and `value` come from the current napi callback.
unsafe fn store_from_raw(env: sys::napi_env, value: sys::napi_value) -> Option<&'static KeyStore> {
    let mut data = std::ptr::null_mut();
    // SAFETY: napi only writes the external's data pointer (and fails for anything else).
    if unsafe { sys::napi_get_value_external(env, value, &mut data) } != sys::Status::napi_ok {
        return None;
    }
    // SAFETY: `inner_from_raw` only dereferences pointers registered as `External<KeyStore>`.
    unsafe { External::<KeyStore>::inner_from_raw(data) }
}

/// Runs the body of a hand-registered callback, turning a panic into a thrown
/// `Error` whose `code` is `INTERNAL` (`lib/errors.js` makes it a
/// `KeygateError`). Unwinding out of an `extern "C"` function would abort Node.
fn guard(env: sys::napi_env, body: impl FnOnce() -> sys::napi_value) -> sys::napi_value {
    // The store stays usable after a panic in a check: checks change nothing
    // but atomics, and its locks do not poison.
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)) {
        Ok(value) => value,
        Err(payload) => {
            let message = panic_message(payload.as_ref());
            // Interior NULs cannot cross as a C string; the message stays readable without them.
            let message = CString::new(message.replace('\0', " ")).unwrap_or_default();
            // SAFETY: plain napi call; a pending exception is what the caller returns to.
            unsafe { sys::napi_throw_error(env, c"INTERNAL".as_ptr(), message.as_ptr()) };
            std::ptr::null_mut()
        }
    }
}

/// A panic's message with anything shaped like a secret redacted (a panic
/// message may quote the value it failed on).
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    let message = match (payload.downcast_ref::<String>(), payload.downcast_ref::<&str>()) {
        (Some(text), _) => text.as_str(),
        (None, Some(text)) => text,
        (None, None) => "a panic without a message",
    };
    redact_secrets(message)
}

/// Reports each panic once on stderr, redacted, instead of Rust's default
/// report (which would print the message raw): the panic itself reaches
/// JavaScript as an `INTERNAL` error, or is caught by the thread it happened in.
fn report_panics() {
    std::panic::set_hook(Box::new(|info| {
        let at = info.location().map_or(String::new(), |at| format!(" at {}:{}", at.file(), at.line()));
        let message = redact_secrets(info.payload_as_str().unwrap_or("a panic without a message"));
        // Never `eprintln!`: it panics when stderr cannot take the line (a full
        // non-blocking pipe, as under a test runner), and a panic inside the panic
        // hook aborts the process. A report that cannot be written is dropped.
        let _ = writeln!(std::io::stderr(), "keygate: internal defect{at}: {message} (please report it)");
    }));
}

/// Test hook, not part of the API (`index.js` does not export it): a
/// hand-registered callback that panics inside `guard`, as `check` would.
unsafe extern "C" fn internal_check_panic_for_tests(env: sys::napi_env, _info: sys::napi_callback_info) -> sys::napi_value {
    guard(env, || panic!("test panic in a raw callback, holding kg_{}", "x".repeat(49)))
}

fn throw_type_error(env: sys::napi_env, message: &CStr) -> sys::napi_value {
    // SAFETY: plain napi call; a pending exception is what the caller returns to.
    unsafe { sys::napi_throw_type_error(env, std::ptr::null(), message.as_ptr()) };
    std::ptr::null_mut()
}

/// Adds `check` (see `check_callback`) and its test twin to the module's
/// exports, and installs the panic report.
#[napi(module_exports)]
pub fn register_check(exports: Object) -> napi::Result<()> {
    report_panics();
    export_raw(&exports, c"check", check_callback)?;
    export_raw(&exports, c"checkDav", check_dav_callback)?;
    export_raw(&exports, c"bindCheck", bind_callback::<BOUND_CHECK>)?;
    export_raw(&exports, c"bindCheckDav", bind_callback::<BOUND_CHECK_DAV>)?;
    export_raw(&exports, c"bindReadFloorForBench", bind_callback::<BOUND_READ_FLOOR>)?;
    export_raw(&exports, c"bindFindFloorForBench", bind_callback::<BOUND_FIND_FLOOR>)?;
    export_raw(&exports, c"internalCheckPanicForTests", internal_check_panic_for_tests)
}

type RawCallback = unsafe extern "C" fn(sys::napi_env, sys::napi_callback_info) -> sys::napi_value;

fn export_raw(exports: &Object, name: &CStr, callback: RawCallback) -> napi::Result<()> {
    let raw = exports.value();
    let mut function = std::ptr::null_mut();
    // SAFETY: plain napi calls with the env and exports object of module initialisation.
    unsafe {
        let status = sys::napi_create_function(
            raw.env,
            name.as_ptr(),
            name.count_bytes() as isize,
            Some(callback),
            std::ptr::null_mut(),
            &mut function,
        );
        if status != sys::Status::napi_ok {
            return Err(napi::Error::new(napi::Status::GenericFailure, format!("cannot create {name:?}")));
        }
        if sys::napi_set_named_property(raw.env, raw.value, name.as_ptr(), function) != sys::Status::napi_ok {
            return Err(napi::Error::new(napi::Status::GenericFailure, format!("cannot export {name:?}")));
        }
    }
    Ok(())
}

#[napi(catch_unwind)]
pub fn explain(
    store: &External<KeyStore>,
    secret: Unknown,
    service: Unknown,
    api: Unknown,
    ip: Option<Unknown>,
) -> napi::Result<ExplanationDto> {
    with_args::<NAME_BUF, NAME_BUF, _>("secret, service, api and ip", Some(secret), [service, api], ip, |args| {
        store.explain(api_call(args)).into()
    })
}

/// `explain` for a WebDAV request.
#[napi(catch_unwind)]
pub fn explain_dav(
    store: &External<KeyStore>,
    secret: Unknown,
    method: Unknown,
    path: Unknown,
    ip: Option<Unknown>,
) -> napi::Result<ExplanationDto> {
    with_args::<METHOD_BUF, PATH_BUF, _>("secret, method, path and ip", Some(secret), [method, path], ip, |args| {
        store.explain_dav(dav_call(args)).into()
    })
}

/// `explain` for a key id instead of a secret: steps 3–9 of the decision for that key.
#[napi(catch_unwind)]
pub fn explain_key(
    store: &External<KeyStore>,
    key_id: String,
    service: Unknown,
    api: Unknown,
    ip: Option<Unknown>,
) -> napi::Result<ExplanationDto> {
    // No secret: `explain_key` starts at step 3, after the secret has named the key.
    with_args::<NAME_BUF, NAME_BUF, _>("service, api and ip", None, [service, api], ip, |args| {
        store.explain_key(&key_id, api_call(args)).into()
    })
}

/// `explainKey` for a WebDAV request.
#[napi(catch_unwind)]
pub fn explain_key_dav(
    store: &External<KeyStore>,
    key_id: String,
    method: Unknown,
    path: Unknown,
    ip: Option<Unknown>,
) -> napi::Result<ExplanationDto> {
    with_args::<METHOD_BUF, PATH_BUF, _>("method, path and ip", None, [method, path], ip, |args| {
        store.explain_key_dav(&key_id, dav_call(args)).into()
    })
}

/// Records uses of keys answered by the JavaScript memo (for `lastUsedAt`).
#[napi(catch_unwind)]
pub fn touch(store: &External<KeyStore>, secrets: Vec<String>, times: Vec<f64>) {
    let uses: Vec<(&[u8], i64)> = secrets.iter().zip(&times).map(|(s, &t)| (s.as_bytes(), t as i64)).collect();
    store.touch(&uses);
}
