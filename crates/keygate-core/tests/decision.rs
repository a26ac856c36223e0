//! `decision::decide`: the decision's steps in order. Each reason on its own,
//! then every step failing at once and fixed one at a time, so that the first
//! failing step is shown to win over all later ones.
//!
//! Every test here runs twice (`twice!` at the end): as written, and with WebDAV
//! rules added to every key and WebDAV rights to every user and role. A key's
//! WebDAV rules never change an API call's answer: both runs must give the same
//! reasons and matched rules, decision for decision.

mod common;

use std::cell::{Cell, RefCell};

use keygate_core::internals::{
    authorize, decide, decide_unavailable, generate, Change, Clock, KeyRecord, Outcome, Prefix, Registry, RoleRecord,
};
use keygate_core::{Call, KeyId, KeyState, Reason, UserStatus};

use common::world::{self, strings, DAY, EXPIRES, T0};

thread_local! {
    /// Whether this run adds WebDAV rules and rights everywhere.
    static WITH_DAV: Cell<bool> = const { Cell::new(false) };
    /// Each API decision of this run: its reason and matched rule.
    static DECISIONS: RefCell<Vec<(Reason, Option<String>)>> = const { RefCell::new(Vec::new()) };
}

/// WebDAV rules that match every WebDAV request and none that match nothing, around
/// the given rules, and enough of them that a short list becomes an indexed one.
fn with_dav(mut rules: Vec<String>) -> Vec<String> {
    if !WITH_DAV.get() {
        return rules;
    }
    rules.insert(0, "dav=* *".into());
    rules.insert(0, "dav=GET session/*".into());
    rules.extend((0..20).map(|n| format!("dav=PROPFIND p{n}/*")));
    rules
}

fn record(outcome: &Outcome<'_>) {
    DECISIONS.with_borrow_mut(|log| log.push((outcome.reason, outcome.matched_rule.map(|m| m.text.to_string()))));
}

/// Runs `test` as written, then with WebDAV rules and rights everywhere; both runs decide alike.
fn both(test: fn()) {
    let run = |with: bool| {
        WITH_DAV.set(with);
        DECISIONS.with_borrow_mut(Vec::clear);
        test();
        DECISIONS.take()
    };
    let plain = run(false);
    let with = run(true);
    assert!(!plain.is_empty());
    assert_eq!(plain, with, "WebDAV rules changed an API answer");
}

fn put_user(r: &mut Registry, status: UserStatus, rights: &[&str], roles: &[&str]) {
    world::put_user(r, status, with_dav(strings(rights)), roles);
}

/// A registry with user `svc` and one key of it; returns the key and its secret.
fn world(user_rights: &[&str], rules: &[&str]) -> (Registry, KeyRecord, String) {
    world::world(with_dav(strings(user_rights)), with_dav(strings(rules)))
}

fn put_key(r: &mut Registry, key: &KeyRecord, change: impl FnOnce(&mut KeyRecord)) {
    let mut key = key.clone();
    change(&mut key);
    key.rules = with_dav(std::mem::take(&mut key.rules));
    r.apply(Change::PutKey(key)).unwrap();
}

/// A call as a caller makes it: any strings.
struct Request<'a> {
    secret: &'a str,
    service: &'a str,
    api: &'a str,
    ip: Option<&'a str>,
}

impl Request<'_> {
    fn call(&self) -> Call<'_> {
        Call { secret: self.secret.as_bytes(), service: self.service.as_bytes(), api: self.api.as_bytes(), ip: self.ip.map(str::as_bytes) }
    }
}

fn decide_at<'r>(r: &'r Registry, now: i64, available: bool, request: &Request<'_>) -> Outcome<'r> {
    let outcome = decide(r, &Prefix::default(), &Clock::new(Some(now)), || available, request.call());
    record(&outcome);
    outcome
}

/// The decision's reason, checked against `authorize` for the key the secret names:
/// steps 3–9 from the key alone give the same answer.
fn reason(r: &Registry, now: i64, request: &Request<'_>) -> Reason {
    let outcome = decide_at(r, now, true, request);
    if let Some(key) = outcome.key {
        let authorized = authorize(r, key, &Clock::new(Some(now)), request.call());
        assert_eq!(authorized.reason, outcome.reason, "authorize agrees with decide");
        assert_eq!(authorized.matched_rule.map(|m| &m.text), outcome.matched_rule.map(|m| &m.text));
    }
    outcome.reason
}

/// A secret of the right shape whose last character is changed: its checksum no longer matches.
fn with_bad_checksum(secret: &str) -> String {
    let (body, last) = secret.split_at(secret.len() - 1);
    format!("{body}{}", if last == "A" { "B" } else { "A" })
}

fn each_reason_on_its_own() {
    let (mut r, key, secret) = world(&["session:*", "data:*"], &["session:get*", "data:entity???Record", "ip=10.0.0.0/8"]);
    let ok = Request { secret: &secret, service: "session", api: "getSessionInfo", ip: Some("10.1.2.3") };
    assert_eq!(reason(&r, T0, &ok), Reason::Allowed);

    let other = generate(&Prefix::default()).unwrap().text;
    let bad_checksum = with_bad_checksum(&secret);
    for malformed in ["", "kg_short", "xx_", bad_checksum.as_str(), "KG_abc"] {
        assert_eq!(reason(&r, T0, &Request { secret: malformed, ..ok }), Reason::MalformedKey, "{malformed:?}");
    }
    assert_eq!(decide_at(&r, T0, false, &ok).reason, Reason::StoreUnavailable);
    assert_eq!(reason(&r, T0, &Request { secret: &other, ..ok }), Reason::UnknownKey);
    for (service, api) in [("", "x"), ("session", ""), ("session", "get*"), ("se ssion", "x"), ("session:x", "y")] {
        assert_eq!(reason(&r, T0, &Request { service, api, ..ok }), Reason::InvalidRequest, "{service:?} {api:?}");
    }
    put_key(&mut r, &key, |k| k.state = KeyState::Suspended);
    assert_eq!(reason(&r, T0, &ok), Reason::Suspended);
    put_key(&mut r, &key, |k| k.state = KeyState::Revoked);
    assert_eq!(reason(&r, T0, &ok), Reason::Revoked);
    put_key(&mut r, &key, |_| {});
    assert_eq!(reason(&r, EXPIRES - 1, &ok), Reason::Allowed, "usable until the last millisecond");
    assert_eq!(reason(&r, EXPIRES, &ok), Reason::Expired, "expired at expiresAt");
    for status in [UserStatus::Suspended, UserStatus::Archived] {
        put_user(&mut r, status, &["session:*", "data:*"], &[]);
        assert_eq!(reason(&r, T0, &ok), Reason::UserInactive, "{status:?}");
    }
    put_user(&mut r, UserStatus::Active, &["data:*"], &[]);
    assert_eq!(reason(&r, T0, &ok), Reason::UserLacksRight);
    put_user(&mut r, UserStatus::Active, &["*:*"], &[]);
    assert_eq!(reason(&r, T0, &Request { api: "userLogon", ..ok }), Reason::NoMatchingRule);
    for ip in [Some("192.168.0.1"), None, Some("not an ip"), Some("")] {
        assert_eq!(reason(&r, T0, &Request { ip, ..ok }), Reason::IpNotAllowed, "{ip:?}");
    }
    assert_eq!(reason(&r, T0, &Request { ip: Some("::ffff:10.9.9.9"), ..ok }), Reason::Allowed);
}

fn the_first_failing_step_wins_when_every_step_fails() {
    // Everything is wrong at once: each fix reveals the next step's reason, in the decision's order.
    let (mut r, key, secret) = world(&["other:*"], &["session:nothingLikeIt", "ip=10.0.0.0/8"]);
    put_user(&mut r, UserStatus::Suspended, &["other:*"], &[]);
    put_key(&mut r, &key, |k| k.state = KeyState::Suspended);
    let bad_checksum = with_bad_checksum(&secret);
    let mut request = Request { secret: &bad_checksum, service: "session", api: "get*", ip: Some("192.168.0.1") };
    let mut now = EXPIRES + DAY;
    let mut available = false;
    let mut seen = Vec::new();
    let mut decide_now = |r: &Registry, request: &Request<'_>, now: i64, available: bool| {
        let reason = decide_at(r, now, available, request).reason;
        seen.push(reason);
        reason
    };

    // Until step 3 is fixed, the key is unknown too: a registry without it.
    let stranger = Registry::default();
    assert_eq!(decide_now(&stranger, &request, now, available), Reason::MalformedKey);
    request.secret = &secret;
    assert_eq!(decide_now(&stranger, &request, now, available), Reason::StoreUnavailable);
    available = true;
    assert_eq!(decide_now(&stranger, &request, now, available), Reason::UnknownKey);
    assert_eq!(decide_now(&r, &request, now, available), Reason::InvalidRequest);
    request.api = "getSessionInfo";
    assert_eq!(decide_now(&r, &request, now, available), Reason::Suspended);
    put_key(&mut r, &key, |k| k.state = KeyState::Revoked);
    assert_eq!(decide_now(&r, &request, now, available), Reason::Revoked);
    put_key(&mut r, &key, |k| k.rules = strings(&["session:nothingLikeIt", "ip=10.0.0.0/8"]));
    assert_eq!(decide_now(&r, &request, now, available), Reason::Expired);
    now = T0;
    assert_eq!(decide_now(&r, &request, now, available), Reason::UserInactive);
    put_user(&mut r, UserStatus::Active, &["other:*"], &[]);
    assert_eq!(decide_now(&r, &request, now, available), Reason::UserLacksRight);
    put_user(&mut r, UserStatus::Active, &["session:*"], &[]);
    assert_eq!(decide_now(&r, &request, now, available), Reason::NoMatchingRule);
    put_key(&mut r, &key, |k| k.rules = strings(&["session:get*", "ip=10.0.0.0/8"]));
    assert_eq!(decide_now(&r, &request, now, available), Reason::IpNotAllowed);
    request.ip = Some("10.0.0.1");
    assert_eq!(decide_now(&r, &request, now, available), Reason::Allowed);

    // Every reason was met, and in the order of Reason's values (the order of the steps)
    // except store_unavailable, which sits between steps 1 and 2.
    let mut in_step_order: Vec<_> = Reason::ALL.into_iter().filter(|&x| x != Reason::Allowed && x != Reason::StoreUnavailable).collect();
    in_step_order.insert(1, Reason::StoreUnavailable);
    in_step_order.push(Reason::Allowed);
    assert_eq!(seen, in_step_order);
}

fn the_store_is_asked_only_for_a_well_formed_secret_and_the_clock_only_from_the_expiry_step() {
    let (mut r, key, secret) = world(&["session:*"], &[]);
    let ok = Request { secret: &secret, service: "session", api: "x", ip: None };
    let asked = Cell::new(0);
    let clock = Clock::new(Some(T0));
    let run = |r: &Registry, request: &Request<'_>| {
        let outcome = decide(
            r,
            &Prefix::default(),
            &clock,
            || {
                asked.set(asked.get() + 1);
                true
            },
            request.call(),
        );
        record(&outcome);
        (outcome.reason, outcome.now)
    };
    assert_eq!(run(&r, &Request { secret: "kg_nope", ..ok }), (Reason::MalformedKey, None));
    assert_eq!(asked.get(), 0, "a malformed secret is refused without asking the store");
    let other = generate(&Prefix::default()).unwrap().text;
    assert_eq!(run(&r, &Request { secret: &other, ..ok }), (Reason::UnknownKey, None));
    assert_eq!(run(&r, &Request { api: "x y", ..ok }), (Reason::InvalidRequest, None));
    put_key(&mut r, &key, |k| k.state = KeyState::Suspended);
    assert_eq!(run(&r, &ok), (Reason::Suspended, None), "no clock read before step 5");
    put_key(&mut r, &key, |_| {});
    assert_eq!(run(&r, &ok), (Reason::Allowed, Some(T0)));
    clock.set(Some(EXPIRES));
    assert_eq!(run(&r, &ok), (Reason::Expired, Some(EXPIRES)));
    assert_eq!(asked.get(), 5, "asked once per well-formed call");
}

fn rights_come_from_the_user_and_its_roles() {
    let (mut r, _, secret) = world(&[], &[]);
    let call = Request { secret: &secret, service: "data", api: "entityGetRecord", ip: None };
    assert_eq!(reason(&r, T0, &call), Reason::UserLacksRight, "no rights at all");
    r.apply(Change::PutRole(RoleRecord { name: "reader".into(), rights: with_dav(strings(&["data:entity*"])) })).unwrap();
    put_user(&mut r, UserStatus::Active, &[], &["reader", "ghost"]);
    assert_eq!(reason(&r, T0, &call), Reason::Allowed, "through a role; a missing role is skipped");
    r.apply(Change::DeleteRole("reader".into())).unwrap();
    assert_eq!(reason(&r, T0, &call), Reason::UserLacksRight, "the role deleted");
}

fn the_matched_rule_is_the_first_api_rule_that_matches() {
    let (r, _, secret) = world(&["*:*"], &["data:*", "session:get*", "session:*"]);
    let outcome = decide_at(&r, T0, true, &Request { secret: &secret, service: "session", api: "getX", ip: None });
    assert_eq!(outcome.reason, Reason::Allowed);
    assert_eq!(outcome.matched_rule.map(|m| &*m.text), Some("session:get*"));
    assert_eq!(outcome.key.map(|k| k.id), Some(KeyId::from_bytes([1; 16])));

    let (open, _, secret) = world(&["*:*"], &["ip=10.0.0.0/8"]);
    let outcome = decide_at(&open, T0, true, &Request { secret: &secret, service: "any", api: "thing", ip: Some("10.0.0.1") });
    assert_eq!((outcome.reason, outcome.matched_rule.is_none()), (Reason::Allowed, true), "no API rules: any API the user may call");
}

fn a_long_list_of_exact_rules_allows_only_the_calls_it_names() {
    // Enough exact rules that the list is indexed, and its hash table holds entries whose
    // short tags collide with a call's: only the entry equal to the call's names may answer.
    const RULES: usize = 300;
    let service_of = |n: usize| format!("svc{}", n % 3);
    let rules: Vec<String> = (0..RULES).map(|n| format!("{}:op{n}", service_of(n))).collect();
    let texts: Vec<&str> = rules.iter().map(String::as_str).collect();
    let (r, _, secret) = world(&["*:*"], &texts);
    for n in 0..RULES {
        let (service, api) = (service_of(n), format!("op{n}"));
        let named = decide_at(&r, T0, true, &Request { secret: &secret, service: &service, api: &api, ip: None });
        assert_eq!((named.reason, named.matched_rule.map(|m| m.text.to_string())), (Reason::Allowed, Some(format!("{service}:{api}"))));
        let elsewhere = [(service_of(n + 1), api.clone()), (service.clone(), format!("op{}", n + RULES)), ("other".into(), api.clone())];
        for (service, api) in elsewhere {
            let outcome = decide_at(&r, T0, true, &Request { secret: &secret, service: &service, api: &api, ip: None });
            assert_eq!(outcome.reason, Reason::NoMatchingRule, "{service}:{api} is named by no rule");
        }
    }
}

#[test]
fn a_store_that_cannot_vouch_still_answers_step_one() {
    let secret = generate(&Prefix::default()).unwrap().text;
    let call = |secret: &str| decide_unavailable(&Prefix::default(), Request { secret, service: "s", api: "a", ip: None }.call());
    assert_eq!(call(&secret), Reason::StoreUnavailable);
    assert_eq!(call(&with_bad_checksum(&secret)), Reason::MalformedKey);
    assert_eq!(call("kg_"), Reason::MalformedKey);
}

/// Each test above, run by [`both`].
macro_rules! twice {
    ($($test:ident),* $(,)?) => {
        mod with_and_without_webdav_rules {
            $(
                #[test]
                fn $test() {
                    super::both(super::$test);
                }
            )*
        }
    };
}

twice!(
    each_reason_on_its_own,
    the_first_failing_step_wins_when_every_step_fails,
    the_store_is_asked_only_for_a_well_formed_secret_and_the_clock_only_from_the_expiry_step,
    rights_come_from_the_user_and_its_roles,
    the_matched_rule_is_the_first_api_rule_that_matches,
    a_long_list_of_exact_rules_allows_only_the_calls_it_names,
);
