//! Admin calls: one binding function per `KeyStore` method, each only converting.
//! Every entry point catches unwinding (`catch_unwind`): a panic becomes a JS
//! error (code `GenericFailure`, the panic message) that `lib/errors.js` turns
//! into `KeygateError('INTERNAL')`, instead of aborting Node.

use std::sync::Arc;

use keygate_core::{AuditAction, AuditQuery, Expect, Incident, KeyFilter, KeyPatch, KeyStore, NewKey, OnError, Options, UserInput};
use napi::bindgen_prelude::{External, Unknown};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::Env;
use napi_derive::napi;

use crate::convert::{
    error_code_of, js_error, js_store_error, ms, AuditEntryDto, AuditQueryDto, AuditReportDto, CopyReportDto, EffectiveRightsDto,
    ErrorCode, HealthDto, IssuedDto, KeyCountsDto, KeyDto, KeyPageDto, KeyPageQueryDto, KeyPatchDto, NewKeyDto, RoleDto, StoreOptionsDto,
    Task, UserDto, UserInputDto,
};

/// `(code, message, task, recovered, consequence)` of a background incident, delivered to the
/// JS thread; weak, so it never keeps the event loop alive. (Spelled out in the
/// binding functions below, so that the generated typings can name it.)
type IncidentCallback = ThreadsafeFunction<
    (ErrorCode, String, Task, bool, String),
    Unknown<'static>,
    (ErrorCode, String, Task, bool, String),
    napi::Status,
    false,
    true,
>;

/// Most rules one key, user or role may hold: the JS layer refuses a longer list before reading it.
#[napi]
pub const MAX_RULES: u32 = keygate_core::MAX_RULES as u32;
/// Most roles one user may list: the JS layer refuses a longer list before reading it.
#[napi]
pub const MAX_USER_ROLES: u32 = keygate_core::MAX_USER_ROLES as u32;

fn options(options: StoreOptionsDto, report: Option<IncidentCallback>) -> Options {
    let on_error = report.map(|callback| {
        let handler: OnError = Arc::new(move |incident: &Incident| {
            let args = (
                error_code_of(incident.error.code),
                incident.error.message.clone(),
                Task::from(incident.task),
                incident.recovered,
                incident.task.consequence().to_string(),
            );
            // Non-blocking: a keygate thread never waits on JavaScript.
            callback.call(args, ThreadsafeFunctionCallMode::NonBlocking);
        });
        handler
    });
    Options {
        key_prefix: options.key_prefix,
        max_lifetime_days: options.max_lifetime_days,
        now: options.now.map(ms),
        purge_expired_after_days: options.purge_expired_after_days,
        on_error,
        fail_closed_after_ms: options.fail_closed_after_ms,
        connect_timeout_ms: options.connect_timeout_ms,
        statement_timeout_ms: options.statement_timeout_ms,
        create: options.create,
    }
}

#[napi(catch_unwind)]
#[allow(clippy::type_complexity)] // spelled out, so that the generated typings can name the callback
pub fn store_in_memory(
    options: StoreOptionsDto,
    report: Option<
        ThreadsafeFunction<
            (ErrorCode, String, Task, bool, String),
            Unknown<'static>,
            (ErrorCode, String, Task, bool, String),
            napi::Status,
            false,
            true,
        >,
    >,
) -> napi::Result<External<KeyStore>, String> {
    KeyStore::in_memory(self::options(options, report)).map(External::new).map_err(js_error)
}

#[napi(catch_unwind)]
#[allow(clippy::type_complexity)] // as above
pub fn store_open(
    path: String,
    options: StoreOptionsDto,
    report: Option<
        ThreadsafeFunction<
            (ErrorCode, String, Task, bool, String),
            Unknown<'static>,
            (ErrorCode, String, Task, bool, String),
            napi::Status,
            false,
            true,
        >,
    >,
) -> napi::Result<External<KeyStore>, String> {
    KeyStore::open(&path, self::options(options, report)).map(External::new).map_err(js_error)
}

/// A message about a call on `store` (one the JavaScript side made) as callers may see it:
/// withheld whole when it would give away a secret of the store (`KeyStore::scrub_text`).
#[napi(catch_unwind)]
pub fn store_scrub_message(store: &External<KeyStore>, text: String) -> String {
    store.scrub_text(&text)
}

#[napi(catch_unwind)]
pub fn store_close(store: &External<KeyStore>) -> napi::Result<(), String> {
    store.close().map_err(js_store_error(store))
}

/// Writes the `lastUsedAt` noted so far (`KeyStore::flush_uses`): at the process's exit. Throws
/// the failure, which the caller reports itself (the event loop has stopped).
#[napi(catch_unwind)]
pub fn store_flush_uses(store: &External<KeyStore>) -> napi::Result<(), String> {
    store.flush_uses().map_err(js_store_error(store))
}

#[napi(catch_unwind)]
pub fn store_health(store: &External<KeyStore>) -> HealthDto {
    store.health().into()
}

#[napi(catch_unwind)]
pub fn store_backup(store: &External<KeyStore>, to: String) -> napi::Result<(), String> {
    store.backup(&to).map_err(js_store_error(store))
}

#[napi(catch_unwind)]
pub fn store_copy(from: &External<KeyStore>, to: &External<KeyStore>) -> napi::Result<CopyReportDto, String> {
    KeyStore::copy(from, to).map(CopyReportDto::from).map_err(|e| js_store_error(to)(from.scrub_error(e)))
}

#[napi(catch_unwind)]
pub fn audit(store: &External<KeyStore>, query: AuditQueryDto) -> napi::Result<Vec<AuditEntryDto>, String> {
    let action = query.action.as_deref().map(AuditAction::parse).transpose().map_err(js_store_error(store))?;
    let query = AuditQuery {
        action,
        actor: query.actor,
        key_id: query.key_id,
        user_id: query.user_id,
        since: query.since.map(ms),
        until: query.until.map(ms),
        // A whole number from 0 to 2^53 (lib/store.js checks it): the cast is exact.
        before_seq: query.before_seq.map(|seq| seq as u64),
        limit: query.limit.map(|l| l as usize),
    };
    let entries = store.audit(&query).map_err(js_store_error(store))?;
    Ok(entries.into_iter().map(AuditEntryDto::from).collect())
}

#[napi(catch_unwind)]
pub fn verify_audit(store: &External<KeyStore>) -> napi::Result<AuditReportDto, String> {
    store.verify_audit().map(AuditReportDto::from).map_err(js_store_error(store))
}

/// The store's shared signal words as an ArrayBuffer (see `keygate_core::memo`);
/// the buffer keeps the words alive for as long as JavaScript holds it. `null` where the
/// runtime allows no external buffers (Electron's V8 sandbox): the memo then stays off.
#[napi(catch_unwind, ts_return_type = "ArrayBuffer | null")]
pub fn store_signals(env: &Env, store: &External<KeyStore>) -> napi::Result<Unknown<'static>> {
    let signals = store.signals();
    let data = Arc::as_ptr(&signals).cast_mut().cast::<std::ffi::c_void>();
    shared_buffer(env, data, std::mem::size_of::<keygate_core::Signals>(), signals)
}

/// The bitset of every key's hint (see `keygate_core::memo`), shared like the signals
/// (`null` likewise: the memo then refuses no secret by its hint).
#[napi(catch_unwind, ts_return_type = "ArrayBuffer | null")]
pub fn store_hints(env: &Env, store: &External<KeyStore>) -> napi::Result<Unknown<'static>> {
    let hints = store.hints();
    let data = hints.as_ptr().cast_mut().cast::<std::ffi::c_void>();
    let len = hints.byte_len();
    shared_buffer(env, data, len, hints)
}

/// Set by `internalRefuseExternalBuffersForTests`: [`shared_buffer`] answers as a runtime that
/// allows no external buffers does.
static REFUSE_EXTERNAL_BUFFERS_FOR_TESTS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Test hook, not part of the API (`index.js` does not export it): `true` makes the stores
/// opened next get no shared buffers, as in a runtime that allows none; `false` undoes it.
#[napi(catch_unwind, js_name = "internalRefuseExternalBuffersForTests")]
pub fn internal_refuse_external_buffers_for_tests(refuse: bool) {
    REFUSE_EXTERNAL_BUFFERS_FOR_TESTS.store(refuse, std::sync::atomic::Ordering::Relaxed);
}

/// Set by `internalCopyExternalBuffersForTests`: [`shared_buffer`] is answered as a runtime that
/// copies external buffers answers (`napi_ok`, and a buffer over memory of its own).
static COPY_EXTERNAL_BUFFERS_FOR_TESTS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Test hook, not part of the API (`index.js` does not export it): `true` makes the stores
/// opened next get copies for shared buffers, as in a runtime whose external buffers are copies
/// (Deno's first N-API layer); `false` undoes it.
#[napi(catch_unwind, js_name = "internalCopyExternalBuffersForTests")]
pub fn internal_copy_external_buffers_for_tests(copy: bool) {
    COPY_EXTERNAL_BUFFERS_FOR_TESTS.store(copy, std::sync::atomic::Ordering::Relaxed);
}

/// `len` bytes at `data`, which `owner` keeps alive, as an ArrayBuffer over that very memory
/// (the finaliser drops `owner`), or `null` where the runtime allows no external buffers
/// (Electron's V8 sandbox) or makes them over a copy (Deno's first N-API layer answered
/// `napi_ok` so). napi-rs's `ArrayBuffer::from_external` hands back a copy in the first case too.
/// A copy never sees the core's later writes: the memo would go on answering from before a
/// revocation, and its hint filter would refuse every key made after the store opened.
fn shared_buffer<T>(env: &Env, data: *mut std::ffi::c_void, len: usize, owner: Arc<T>) -> napi::Result<Unknown<'static>> {
    unsafe extern "C" fn finalize<T>(_env: napi::sys::napi_env, _data: *mut std::ffi::c_void, hint: *mut std::ffi::c_void) {
        // SAFETY: `hint` is the `Box<Arc<T>>` given below, finalised once.
        drop(unsafe { Box::from_raw(hint.cast::<Arc<T>>()) });
    }
    let hint = Box::into_raw(Box::new(owner)).cast::<std::ffi::c_void>();
    let mut value = std::ptr::null_mut();
    let status = if REFUSE_EXTERNAL_BUFFERS_FOR_TESTS.load(std::sync::atomic::Ordering::Relaxed) {
        napi::sys::Status::napi_no_external_buffers_allowed
    } else if COPY_EXTERNAL_BUFFERS_FOR_TESTS.load(std::sync::atomic::Ordering::Relaxed) {
        let mut copy = std::ptr::null_mut();
        // SAFETY: plain napi call writing `copy` and `value`.
        let status = unsafe { napi::sys::napi_create_arraybuffer(env.raw(), len, &mut copy, &mut value) };
        if status == napi::sys::Status::napi_ok {
            // SAFETY: `copy` holds `len` new writable bytes, apart from `data`, which is valid for
            // `len` bytes (its owner is still alive in `hint`).
            unsafe { std::ptr::copy_nonoverlapping(data.cast::<u8>(), copy.cast::<u8>(), len) };
            // SAFETY: the copy needs no owner: `hint` is finalised here, once, as such a runtime does.
            unsafe { finalize::<T>(env.raw(), data, hint) };
        }
        status
    } else {
        // SAFETY: `data` stays valid for `len` bytes while `owner` (moved into `hint`) lives,
        // that is until the finaliser runs.
        unsafe { napi::sys::napi_create_external_arraybuffer(env.raw(), data, len, Some(finalize::<T>), hint, &mut value) }
    };
    if status == napi::sys::Status::napi_ok && !is_over(env, value, data) {
        // A buffer, but over memory of its own: a copy. Its finaliser (`hint`) is the runtime's to
        // run, if it ever does, not ours; answered as a runtime that refuses external buffers.
        // SAFETY: plain napi call writing `value`.
        unsafe { napi::sys::napi_get_null(env.raw(), &mut value) };
    } else if status != napi::sys::Status::napi_ok {
        // SAFETY: no buffer was made, so nothing will finalise `hint`: it is reclaimed here, once.
        drop(unsafe { Box::from_raw(hint.cast::<Arc<T>>()) });
        if status == napi::sys::Status::napi_no_external_buffers_allowed {
            // SAFETY: plain napi call writing `value`.
            unsafe { napi::sys::napi_get_null(env.raw(), &mut value) };
        } else {
            return Err(napi::Error::new(
                napi::Status::GenericFailure,
                format!("cannot share the store's memory with JavaScript (status {status})"),
            ));
        }
    }
    // SAFETY: `value` is a live napi value of this env, returned straight to JavaScript.
    Ok(unsafe { Unknown::from_raw_unchecked(env.raw(), value) })
}

/// Whether the ArrayBuffer `value` lies over the memory at `data` (and not over a copy of it).
fn is_over(env: &Env, value: napi::sys::napi_value, data: *mut std::ffi::c_void) -> bool {
    let mut at = std::ptr::null_mut();
    let mut len = 0;
    // SAFETY: plain napi call on a live ArrayBuffer of this env, writing `at` and `len`.
    let status = unsafe { napi::sys::napi_get_arraybuffer_info(env.raw(), value, &mut at, &mut len) };
    status == napi::sys::Status::napi_ok && at == data
}

#[napi(catch_unwind)]
pub fn store_set_now(store: &External<KeyStore>, at: Option<f64>) {
    store.set_now(at.map(ms));
}

#[napi(catch_unwind)]
pub fn store_now(store: &External<KeyStore>) -> f64 {
    store.now() as f64
}

#[napi(catch_unwind)]
pub fn store_max_lifetime_days(store: &External<KeyStore>) -> u32 {
    store.max_lifetime_days()
}

#[napi(catch_unwind)]
pub fn store_created(store: &External<KeyStore>) -> bool {
    store.created()
}

#[napi(catch_unwind)]
pub fn store_key_prefix(store: &External<KeyStore>) -> String {
    store.key_prefix().to_string()
}

#[napi(catch_unwind)]
pub fn put_role(
    store: &External<KeyStore>,
    name: String,
    rights: Vec<String>,
    actor: Option<String>,
    expect: Option<String>,
) -> napi::Result<RoleDto, String> {
    let expect = Expect::parse(expect.as_deref()).map_err(js_store_error(store))?;
    store.put_role_expecting(&name, &rights, expect, actor.as_deref()).map(RoleDto::from).map_err(js_store_error(store))
}

#[napi(catch_unwind)]
pub fn delete_role(store: &External<KeyStore>, name: String, actor: Option<String>) -> napi::Result<bool, String> {
    store.delete_role(&name, actor.as_deref()).map_err(js_store_error(store))
}

#[napi(catch_unwind)]
pub fn get_role(store: &External<KeyStore>, name: String) -> napi::Result<Option<RoleDto>, String> {
    Ok(store.get_role(&name).map_err(js_store_error(store))?.map(RoleDto::from))
}

#[napi(catch_unwind)]
pub fn list_roles(store: &External<KeyStore>) -> napi::Result<Vec<RoleDto>, String> {
    Ok(store.list_roles().map_err(js_store_error(store))?.into_iter().map(RoleDto::from).collect())
}

#[napi(catch_unwind)]
pub fn put_user(
    store: &External<KeyStore>,
    user: UserInputDto,
    actor: Option<String>,
    expect: Option<String>,
) -> napi::Result<UserDto, String> {
    let expect = Expect::parse(expect.as_deref()).map_err(js_store_error(store))?;
    let input =
        UserInput { id: user.id, status: user.status, rights: user.rights.unwrap_or_default(), roles: user.roles.unwrap_or_default() };
    store.put_user_expecting(&input, expect, actor.as_deref()).map(UserDto::from).map_err(js_store_error(store))
}

#[napi(catch_unwind)]
pub fn get_user(store: &External<KeyStore>, id: String) -> napi::Result<Option<UserDto>, String> {
    Ok(store.get_user(&id).map_err(js_store_error(store))?.map(UserDto::from))
}

#[napi(catch_unwind)]
pub fn effective_rights(store: &External<KeyStore>, user_id: String) -> napi::Result<Option<EffectiveRightsDto>, String> {
    Ok(store.effective_rights(&user_id).map_err(js_store_error(store))?.map(EffectiveRightsDto::from))
}

#[napi(catch_unwind)]
pub fn list_users(store: &External<KeyStore>) -> napi::Result<Vec<UserDto>, String> {
    Ok(store.list_users().map_err(js_store_error(store))?.into_iter().map(UserDto::from).collect())
}

#[napi(catch_unwind)]
pub fn delete_user(store: &External<KeyStore>, id: String, actor: Option<String>) -> napi::Result<bool, String> {
    store.delete_user(&id, actor.as_deref()).map_err(js_store_error(store))
}

#[napi(catch_unwind)]
pub fn create_key(store: &External<KeyStore>, input: NewKeyDto, actor: Option<String>) -> napi::Result<IssuedDto, String> {
    let input = NewKey {
        user_id: input.user_id,
        description: input.description,
        expires_at: input.expires_at.map(ms),
        rules: input.rules.unwrap_or_default(),
        state: input.state,
    };
    store.create_key(&input, actor.as_deref()).map(IssuedDto::from).map_err(js_store_error(store))
}

#[napi(catch_unwind)]
pub fn get_key(store: &External<KeyStore>, id: String) -> napi::Result<Option<KeyDto>, String> {
    Ok(store.get_key(&id).map_err(js_store_error(store))?.map(KeyDto::from))
}

#[napi(catch_unwind)]
pub fn list_keys(
    store: &External<KeyStore>,
    user_id: Option<String>,
    state: Option<String>,
    search: Option<String>,
) -> napi::Result<Vec<KeyDto>, String> {
    let filter = KeyFilter { user_id, state, search };
    let keys = store.list_keys(&filter).map_err(js_store_error(store))?;
    Ok(keys.into_iter().map(KeyDto::from).collect())
}

#[napi(catch_unwind)]
pub fn list_keys_page(store: &External<KeyStore>, query: KeyPageQueryDto) -> napi::Result<KeyPageDto, String> {
    store.list_keys_page(&query.into()).map(KeyPageDto::from).map_err(js_store_error(store))
}

/// How many keys each user holding any has in each state, by user id: for `keygate/admin`'s list
/// of users, which built every key's view to count them (seconds at 100,000 keys).
#[napi(catch_unwind)]
pub fn store_key_counts(store: &External<KeyStore>) -> napi::Result<Vec<KeyCountsDto>, String> {
    Ok(store.key_counts().map_err(js_store_error(store))?.into_iter().map(KeyCountsDto::from).collect())
}

#[napi(catch_unwind)]
pub fn update_key(store: &External<KeyStore>, id: String, patch: KeyPatchDto, actor: Option<String>) -> napi::Result<KeyDto, String> {
    let patch = KeyPatch {
        description: patch.description,
        rules: patch.rules,
        expires_at: patch.expires_at_given.then(|| patch.expires_at.map(ms)),
        expected_updated_at: patch.expected_updated_at.map(ms),
    };
    store.update_key(&id, &patch, actor.as_deref()).map(KeyDto::from).map_err(js_store_error(store))
}

#[napi(catch_unwind)]
pub fn set_state(
    store: &External<KeyStore>,
    id: String,
    state: String,
    expected_updated_at: Option<f64>,
    actor: Option<String>,
) -> napi::Result<KeyDto, String> {
    store.set_state_if(&id, &state, expected_updated_at.map(ms), actor.as_deref()).map(KeyDto::from).map_err(js_store_error(store))
}

#[napi(catch_unwind)]
pub fn rotate_key(
    store: &External<KeyStore>,
    id: String,
    overlap_seconds: f64,
    expected_updated_at: Option<f64>,
    actor: Option<String>,
) -> napi::Result<IssuedDto, String> {
    store
        .rotate_key_if(&id, overlap_seconds, expected_updated_at.map(ms), actor.as_deref())
        .map(IssuedDto::from)
        .map_err(js_store_error(store))
}

#[napi(catch_unwind)]
pub fn delete_key(store: &External<KeyStore>, id: String, actor: Option<String>) -> napi::Result<bool, String> {
    store.delete_key(&id, actor.as_deref()).map_err(js_store_error(store))
}

#[napi(catch_unwind)]
pub fn validate_rule(rule: String) -> napi::Result<String, String> {
    keygate_core::validate_rule(&rule).map_err(js_error)
}

/// Checks an actor as an admin call would (1–256 characters, no control or bidirectional
/// control characters, no secret), for options that name one before any call is made.
#[napi(catch_unwind)]
pub fn validate_actor(actor: String) -> napi::Result<(), String> {
    keygate_core::check_actor(&actor).map_err(js_error)
}

/// Test hook, not part of the API (`index.js` does not export it): panics with
/// `message`, so tests can see a panic arrive as an `INTERNAL` error.
#[napi(catch_unwind)]
pub fn internal_panic_for_tests(message: String) {
    panic!("{message}");
}
