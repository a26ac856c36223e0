//! `decision::decide_dav`: the decision on a WebDAV request, step by step. Step 3
//! checks the method and path, step 7 the user's WebDAV rights, step 8 the key's
//! WebDAV rules (none = unrestricted), step 9 its IP rules; API rules and rights
//! never decide a WebDAV request.

mod common;

use keygate_core::internals::DavRule;
use keygate_core::internals::{
    authorize_dav, decide_dav, decide_dav_unavailable, generate, Change, Clock, KeyRecord, Outcome, Prefix, Registry, RoleRecord,
};
use keygate_core::{DavCall, KeyState, Reason, UserStatus};

use common::world::{self, strings, EXPIRES, T0};

fn put_user(r: &mut Registry, status: UserStatus, rights: &[&str], roles: &[&str]) {
    world::put_user(r, status, strings(rights), roles);
}

/// A registry with user `svc` and one key of it; returns the key and its secret.
fn world(user_rights: &[&str], rules: &[&str]) -> (Registry, KeyRecord, String) {
    world::world(strings(user_rights), strings(rules))
}

fn put_key(r: &mut Registry, key: &KeyRecord, change: impl FnOnce(&mut KeyRecord)) {
    let mut key = key.clone();
    change(&mut key);
    r.apply(Change::PutKey(key)).unwrap();
}

#[derive(Clone, Copy)]
struct Request<'a> {
    secret: &'a str,
    method: &'a str,
    path: &'a str,
    ip: Option<&'a str>,
}

impl Request<'_> {
    fn call(&self) -> DavCall<'_> {
        DavCall {
            secret: self.secret.as_bytes(),
            method: self.method.as_bytes(),
            path: self.path.as_bytes(),
            ip: self.ip.map(str::as_bytes),
        }
    }
}

fn decide_at<'r>(r: &'r Registry, now: i64, available: bool, request: &Request<'_>) -> Outcome<'r, DavRule> {
    decide_dav(r, &Prefix::default(), &Clock::new(Some(now)), || available, request.call())
}

/// The reason and matched rule, checked against `authorize_dav` for the key the secret names.
fn decision(r: &Registry, now: i64, request: &Request<'_>) -> (Reason, Option<String>) {
    let outcome = decide_at(r, now, true, request);
    let matched = outcome.matched_rule.map(|m| m.text.to_string());
    if let Some(key) = outcome.key {
        let authorized = authorize_dav(r, key, &Clock::new(Some(now)), request.call());
        assert_eq!((authorized.reason, authorized.matched_rule.map(|m| m.text.to_string())), (outcome.reason, matched.clone()));
    }
    (outcome.reason, matched)
}

fn reason(r: &Registry, now: i64, request: &Request<'_>) -> Reason {
    decision(r, now, request).0
}

#[test]
fn each_reason_on_its_own() {
    let rights = ["session:*", "dav=* docs/*"];
    let (mut r, key, secret) = world(&rights, &["session:get*", "dav=GET docs/reports/*", "ip=10.0.0.0/8"]);
    let ok = Request { secret: &secret, method: "GET", path: "docs/reports/q1.pdf", ip: Some("10.1.2.3") };
    assert_eq!(decision(&r, T0, &ok), (Reason::Allowed, Some("dav=GET docs/reports/*".into())));

    for malformed in ["", "kg_short", "KG_abc"] {
        assert_eq!(reason(&r, T0, &Request { secret: malformed, ..ok }), Reason::MalformedKey, "{malformed:?}");
    }
    assert_eq!(decide_at(&r, T0, false, &ok).reason, Reason::StoreUnavailable);
    let other = generate(&Prefix::default()).unwrap().text;
    assert_eq!(reason(&r, T0, &Request { secret: &other, ..ok }), Reason::UnknownKey);
    for (method, path) in [
        ("", "docs/reports/x"),
        ("G3T", "docs/reports/x"),
        ("GET", ""),
        ("GET", "/"),
        ("GET", "docs/reports/../x"),
        ("GET", "docs/reports//x"),
        ("GET", "docs/reports/%2e"),
        ("GET", "docs/reports/*"),
    ] {
        assert_eq!(reason(&r, T0, &Request { method, path, ..ok }), Reason::InvalidRequest, "{method:?} {path:?}");
    }
    put_key(&mut r, &key, |k| k.state = KeyState::Suspended);
    assert_eq!(reason(&r, T0, &ok), Reason::Suspended);
    put_key(&mut r, &key, |k| k.state = KeyState::Revoked);
    assert_eq!(reason(&r, T0, &ok), Reason::Revoked);
    put_key(&mut r, &key, |_| {});
    assert_eq!(reason(&r, EXPIRES - 1, &ok), Reason::Allowed);
    assert_eq!(reason(&r, EXPIRES, &ok), Reason::Expired);
    for status in [UserStatus::Suspended, UserStatus::Archived] {
        put_user(&mut r, status, &rights, &[]);
        assert_eq!(reason(&r, T0, &ok), Reason::UserInactive, "{status:?}");
    }
    put_user(&mut r, UserStatus::Active, &["*:*", "dav=GET other/*"], &[]);
    assert_eq!(reason(&r, T0, &ok), Reason::UserLacksRight);
    put_user(&mut r, UserStatus::Active, &["dav=* *"], &[]);
    assert_eq!(reason(&r, T0, &Request { method: "PUT", ..ok }), Reason::NoMatchingRule);
    for ip in [Some("192.168.0.1"), None, Some("not an ip")] {
        assert_eq!(reason(&r, T0, &Request { ip, ..ok }), Reason::IpNotAllowed, "{ip:?}");
    }
}

#[test]
fn the_first_failing_step_wins_when_every_step_fails() {
    let (mut r, key, secret) = world(&["session:*"], &["dav=GET nothing/*", "ip=10.0.0.0/8"]);
    put_user(&mut r, UserStatus::Suspended, &["session:*"], &[]);
    put_key(&mut r, &key, |k| k.state = KeyState::Revoked);
    let mut request = Request { secret: "kg_x", method: "GET", path: "docs/../x", ip: Some("192.168.0.1") };
    let mut now = EXPIRES;
    let mut seen = vec![reason(&r, now, &request)];
    request.secret = &secret;
    seen.push(decide_at(&r, now, false, &request).reason);
    seen.push(reason(&Registry::default(), now, &request));
    seen.push(reason(&r, now, &request));
    request.path = "/docs/x";
    put_key(&mut r, &key, |k| k.state = KeyState::Suspended);
    seen.push(reason(&r, now, &request));
    put_key(&mut r, &key, |k| k.state = KeyState::Revoked);
    seen.push(reason(&r, now, &request));
    put_key(&mut r, &key, |_| {});
    seen.push(reason(&r, now, &request));
    now = T0;
    seen.push(reason(&r, now, &request));
    put_user(&mut r, UserStatus::Active, &["session:*", "docs:*"], &[]);
    seen.push(reason(&r, now, &request));
    put_user(&mut r, UserStatus::Active, &["dav=GET docs/*"], &[]);
    seen.push(reason(&r, now, &request));
    put_key(&mut r, &key, |k| k.rules = strings(&["dav=GET docs/*", "ip=10.0.0.0/8"]));
    seen.push(reason(&r, now, &request));
    request.ip = Some("10.0.0.1");
    seen.push(reason(&r, now, &request));

    let mut in_step_order: Vec<_> = Reason::ALL.into_iter().filter(|&x| x != Reason::Allowed && x != Reason::StoreUnavailable).collect();
    in_step_order.insert(1, Reason::StoreUnavailable);
    in_step_order.push(Reason::Allowed);
    assert_eq!(seen, in_step_order);
}

#[test]
fn api_rules_and_rights_never_decide_a_webdav_request() {
    // API rights only: no WebDAV request is allowed, whatever the key's rules.
    let (mut r, key, secret) = world(&["*:*"], &[]);
    let get = Request { secret: &secret, method: "GET", path: "docs/a", ip: None };
    assert_eq!(reason(&r, T0, &get), Reason::UserLacksRight);
    // API rules on the key, none of them WebDAV: WebDAV requests are unrestricted by the key.
    put_user(&mut r, UserStatus::Active, &["*:*", "dav=* *"], &[]);
    put_key(&mut r, &key, |k| k.rules = strings(&["session:nothing", "GET:docs/a"]));
    assert_eq!(decision(&r, T0, &get), (Reason::Allowed, None));
    assert_eq!(decision(&r, T0, &Request { method: "DELETE", path: "anything/at/all", ..get }), (Reason::Allowed, None));
    // A WebDAV rule on the key restricts WebDAV requests.
    put_key(&mut r, &key, |k| k.rules = strings(&["GET:docs/a", "dav=GET docs/*"]));
    assert_eq!(reason(&r, T0, &Request { method: "DELETE", ..get }), Reason::NoMatchingRule);
}

#[test]
fn the_matched_rule_is_the_first_webdav_rule_that_matches() {
    let (r, _, secret) = world(&["dav=* *"], &["session:*", "dav=GET docs/a*", "dav=* docs/*", "dav=GET *"]);
    let get = Request { secret: &secret, method: "get", path: "/Docs/ABC", ip: None };
    assert_eq!(decision(&r, T0, &get), (Reason::Allowed, Some("dav=GET docs/a*".into())));
    assert_eq!(decision(&r, T0, &Request { method: "MOVE", ..get }), (Reason::Allowed, Some("dav=* docs/*".into())));
    assert_eq!(decision(&r, T0, &Request { path: "elsewhere", ..get }), (Reason::Allowed, Some("dav=GET *".into())));
    assert_eq!(reason(&r, T0, &Request { method: "PUT", path: "elsewhere", ..get }), Reason::NoMatchingRule);
}

#[test]
fn webdav_rights_come_from_the_user_and_its_roles_and_long_lists_answer_alike() {
    let (mut r, key, secret) = world(&[], &[]);
    let get = Request { secret: &secret, method: "GET", path: "docs/x", ip: None };
    assert_eq!(reason(&r, T0, &get), Reason::UserLacksRight);
    r.apply(Change::PutRole(RoleRecord { name: "reader".into(), rights: strings(&["dav=GET docs/*"]) })).unwrap();
    put_user(&mut r, UserStatus::Active, &[], &["reader"]);
    assert_eq!(reason(&r, T0, &get), Reason::Allowed);
    assert_eq!(reason(&r, T0, &Request { method: "PUT", ..get }), Reason::UserLacksRight);
    // A list long enough to be indexed: the WebDAV rule at its end still decides.
    let mut long: Vec<String> = (0..40).map(|n| format!("svc{n}:api{n}")).collect();
    long.push("dav=GET docs/x".into());
    put_key(&mut r, &key, |k| k.rules = long.clone());
    assert_eq!(decision(&r, T0, &get), (Reason::Allowed, Some("dav=GET docs/x".into())));
    assert_eq!(reason(&r, T0, &Request { path: "docs/y", ..get }), Reason::NoMatchingRule);
}

#[test]
fn a_store_that_cannot_vouch_still_answers_step_one() {
    let secret = generate(&Prefix::default()).unwrap().text;
    let call = |secret: &str| decide_dav_unavailable(&Prefix::default(), Request { secret, method: "GET", path: "a", ip: None }.call());
    assert_eq!(call(&secret), Reason::StoreUnavailable);
    assert_eq!(call("kg_"), Reason::MalformedKey);
}
