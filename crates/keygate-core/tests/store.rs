//! The store as an admin back end and an integration use it.

use keygate_core::{Call, DavCall, ErrorCode, KeyFilter, KeyPageQuery, KeyPatch, KeyStore, NewKey, Options, Reason, UserInput};

const DAY: i64 = 86_400_000;
const T0: i64 = 1_800_000_000_000;

fn store() -> KeyStore {
    KeyStore::in_memory(Options { now: Some(T0), ..Options::default() }).unwrap()
}

fn user(store: &KeyStore, id: &str, rights: &[&str]) {
    store
        .put_user(&UserInput { id: id.into(), rights: rights.iter().map(|r| r.to_string()).collect(), ..Default::default() }, None)
        .unwrap();
}

fn key(store: &KeyStore, user_id: &str, rules: &[&str]) -> (String, String) {
    let issued = store
        .create_key(
            &NewKey {
                user_id: user_id.into(),
                description: "test".into(),
                expires_at: Some(T0 + 30 * DAY),
                rules: rules.iter().map(|r| r.to_string()).collect(),
                state: None,
            },
            None,
        )
        .unwrap();
    (issued.key.id, issued.secret)
}

fn reason(store: &KeyStore, secret: &str, service: &str, api: &str, ip: Option<&str>) -> Reason {
    let call = Call { secret: secret.as_bytes(), service: service.as_bytes(), api: api.as_bytes(), ip: ip.map(str::as_bytes) };
    let verdict = store.check(call);
    let explained = store.explain(call);
    assert_eq!(explained.reason, verdict.reason, "explain and check agree");
    if let Some(id) = &explained.key_id {
        assert_eq!(store.explain_key(id, call), explained, "explain_key agrees with explain");
    }
    verdict.reason
}

#[test]
fn explain_key_decides_steps_three_to_nine_for_a_key_id() {
    let s = store();
    user(&s, "svc", &["session:*"]);
    let (id, _) = key(&s, "svc", &["session:get*"]);
    let call = Call { secret: b"", service: b"session", api: b"getX", ip: None };
    let e = s.explain_key(&id, call);
    assert_eq!((e.reason, e.matched_rule.as_deref(), e.user_id.as_deref()), (Reason::Allowed, Some("session:get*"), Some("svc")));
    assert_eq!(s.explain_key(&id, Call { api: b"bad name", ..call }).reason, Reason::InvalidRequest);
    assert_eq!(s.explain_key(&id, Call { api: b"put", ..call }).reason, Reason::NoMatchingRule);
    for unknown in ["key_00000000000000000000000000000000", "not an id", "", "kg_secret"] {
        let e = s.explain_key(unknown, call);
        assert_eq!((e.reason, e.key_id), (Reason::UnknownKey, None), "{unknown:?}");
    }
    s.set_state(&id, "revoked", None).unwrap();
    assert_eq!(s.explain_key(&id, call).reason, Reason::Revoked);
}

#[test]
fn every_reason_in_order() {
    let s = store();
    user(&s, "svc", &["session:*", "data:*"]);
    let (id, secret) = key(&s, "svc", &["session:get*", "data:entity???Record", "ip=10.0.0.0/8"]);
    let ip = Some("10.1.2.3");
    assert_eq!(reason(&s, &secret, "session", "getSessionInfo", ip), Reason::Allowed);
    assert_eq!(reason(&s, "kg_nope", "session", "getSessionInfo", ip), Reason::MalformedKey);
    let elsewhere = store();
    user(&elsewhere, "svc", &[]);
    let (_, other) = key(&elsewhere, "svc", &[]);
    assert_eq!(reason(&s, &other, "session", "bad name", ip), Reason::UnknownKey, "unknown comes before invalid_request");
    assert_eq!(reason(&s, &secret, "session", "get*", ip), Reason::InvalidRequest);
    assert_eq!(reason(&s, &secret, "", "getSessionInfo", ip), Reason::InvalidRequest);
    assert_eq!(reason(&s, &secret, "session:x", "getSessionInfo", ip), Reason::InvalidRequest, "no ':' inside names");
    s.set_state(&id, "suspended", None).unwrap();
    assert_eq!(reason(&s, &secret, "session", "bad name", ip), Reason::InvalidRequest, "step 3 before step 4");
    assert_eq!(reason(&s, &secret, "session", "getSessionInfo", ip), Reason::Suspended);
    s.set_state(&id, "active", None).unwrap();
    s.set_now(Some(T0 + 30 * DAY - 1));
    assert_eq!(reason(&s, &secret, "session", "getSessionInfo", ip), Reason::Allowed);
    s.set_now(Some(T0 + 30 * DAY));
    assert_eq!(reason(&s, &secret, "session", "getSessionInfo", ip), Reason::Expired, "usable only while now < expiresAt");
    s.set_now(Some(T0));
    s.put_user(&UserInput { id: "svc".into(), status: Some("suspended".into()), rights: vec!["session:*".into()], roles: vec![] }, None)
        .unwrap();
    assert_eq!(reason(&s, &secret, "session", "getSessionInfo", ip), Reason::UserInactive);
    user(&s, "svc", &["data:*"]);
    assert_eq!(reason(&s, &secret, "session", "getSessionInfo", ip), Reason::UserLacksRight);
    user(&s, "svc", &["*:*"]);
    assert_eq!(reason(&s, &secret, "session", "userLogon", ip), Reason::NoMatchingRule);
    assert_eq!(reason(&s, &secret, "data", "entityAddRecord", Some("192.168.0.1")), Reason::IpNotAllowed);
    assert_eq!(reason(&s, &secret, "data", "entityAddRecord", None), Reason::IpNotAllowed);
    assert_eq!(reason(&s, &secret, "data", "entityAddRecord", Some("not an ip")), Reason::IpNotAllowed);
    assert_eq!(reason(&s, &secret, "DATA", "ENTITYADDRECORD", Some("::ffff:10.9.9.9")), Reason::Allowed);
    s.set_state(&id, "revoked", None).unwrap();
    assert_eq!(reason(&s, &secret, "session", "getSessionInfo", ip), Reason::Revoked);
}

#[test]
fn explain_names_key_user_and_first_matching_rule() {
    let s = store();
    user(&s, "svc", &["*:*"]);
    let (id, secret) = key(&s, "svc", &["session:*", "session:getSessionInfo"]);
    let call = Call { secret: secret.as_bytes(), service: b"session", api: b"getSessionInfo", ip: None };
    let e = s.explain(call);
    assert_eq!(e.reason, Reason::Allowed);
    assert_eq!(e.key_id.as_deref(), Some(id.as_str()));
    assert_eq!(e.user_id.as_deref(), Some("svc"));
    assert_eq!(e.matched_rule.as_deref(), Some("session:*"));
    let (_, open) = key(&s, "svc", &[]);
    let e = s.explain(Call { secret: open.as_bytes(), ..call });
    assert_eq!((e.reason, e.matched_rule), (Reason::Allowed, None), "no API rules: allowed with no matched rule");
}

#[test]
fn a_user_lists_at_most_1000_roles() {
    let s = store();
    s.put_role("reader", &["session:*".into()], None).unwrap();
    let roles = vec!["reader".to_string(); keygate_core::MAX_USER_ROLES];
    let user = s.put_user(&UserInput { id: "svc".into(), roles: roles.clone(), ..Default::default() }, None).unwrap();
    assert_eq!(user.roles, vec!["reader".to_string()], "a role listed twice is kept once");
    let mut too_many = roles;
    too_many.push("reader".into());
    let err = s.put_user(&UserInput { id: "other".into(), roles: too_many, ..Default::default() }, None).unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidArgument);
    assert_eq!(err.message, "1001 roles given; at most 1000 are allowed");
    assert!(s.get_user("other").unwrap().is_none());
}

#[test]
fn roles_give_rights_live() {
    let s = store();
    s.put_role("reader", &["data:entityBrowseRecords2".into()], None).unwrap();
    s.put_user(&UserInput { id: "svc".into(), roles: vec!["reader".into()], ..Default::default() }, None).unwrap();
    let (_, secret) = key(&s, "svc", &[]);
    assert_eq!(reason(&s, &secret, "data", "entityBrowseRecords2", None), Reason::Allowed);
    s.put_role("reader", &["session:*".into()], None).unwrap();
    assert_eq!(reason(&s, &secret, "data", "entityBrowseRecords2", None), Reason::UserLacksRight);
    assert_eq!(reason(&s, &secret, "session", "userLogon", None), Reason::Allowed);
    assert!(s.delete_role("reader", None).unwrap());
    assert_eq!(s.get_user("svc").unwrap().unwrap().roles, Vec::<String>::new());
    assert_eq!(reason(&s, &secret, "session", "userLogon", None), Reason::UserLacksRight);
    let err = s.put_user(&UserInput { id: "svc".into(), roles: vec!["ghost".into()], ..Default::default() }, None).unwrap_err();
    assert_eq!(err.code, ErrorCode::UnknownRole);
}

#[test]
fn effective_rights_are_own_then_each_role_once_each() {
    let s = store();
    s.put_role("reader", &["data:*".into(), "session:getX".into()], None).unwrap();
    s.put_role("empty", &[], None).unwrap();
    let input = UserInput {
        id: "svc".into(),
        rights: vec!["session:getX".into()],
        roles: vec!["empty".into(), "reader".into()],
        ..Default::default()
    };
    s.put_user(&input, None).unwrap();
    let e = s.effective_rights("svc").unwrap().unwrap();
    assert_eq!(e.own, ["session:getX"]);
    assert_eq!(e.by_role.iter().map(|r| (r.name.as_str(), r.rights.len())).collect::<Vec<_>>(), [("empty", 0), ("reader", 2)]);
    assert_eq!(e.all, ["session:getX", "data:*"]);
    assert_eq!(s.effective_rights("nobody").unwrap(), None);
}

#[test]
fn a_stale_expected_updated_at_is_a_conflict_and_changes_nothing() {
    let s = store();
    user(&s, "svc", &["*:*"]);
    let (id, _) = key(&s, "svc", &[]);
    s.set_now(Some(T0 + 1000));
    let patch = |expected| KeyPatch { description: Some("mine".into()), expected_updated_at: Some(expected), ..Default::default() };
    s.update_key(&id, &patch(T0), None).unwrap();
    let before = snapshot(&s);
    assert_eq!(s.update_key(&id, &patch(T0), None).unwrap_err().code, ErrorCode::Conflict, "the key changed at T0+1000");
    assert_eq!(s.set_state_if(&id, "suspended", Some(T0), None).unwrap_err().code, ErrorCode::Conflict);
    assert_eq!(s.rotate_key_if(&id, 0.0, Some(T0), None).unwrap_err().code, ErrorCode::Conflict);
    assert_eq!(snapshot(&s), before, "refused changes change nothing");
    assert_eq!(s.set_state_if(&id, "suspended", Some(T0 + 1000), None).unwrap().state, "suspended");
}

#[test]
fn revoked_is_final_and_failed_calls_change_nothing() {
    let s = store();
    user(&s, "svc", &["*:*"]);
    let (id, _) = key(&s, "svc", &["session:*"]);
    let before = s.get_key(&id).unwrap().unwrap();
    for (patch, code) in [
        (KeyPatch { rules: Some(vec!["session:*".into(), "bad".into()]), ..Default::default() }, ErrorCode::InvalidRule),
        (KeyPatch { description: Some("x".into()), expires_at: Some(Some(T0)), ..Default::default() }, ErrorCode::ExpiryInPast),
        (KeyPatch { expires_at: Some(Some(T0 + 731 * DAY)), ..Default::default() }, ErrorCode::ExpiryTooFar),
        (KeyPatch { expires_at: Some(None), ..Default::default() }, ErrorCode::ExpiryRequired),
        (KeyPatch { description: Some("d".repeat(1025)), ..Default::default() }, ErrorCode::InvalidArgument),
    ] {
        assert_eq!(s.update_key(&id, &patch, None).unwrap_err().code, code);
        assert_eq!(s.get_key(&id).unwrap().unwrap(), before, "failed update changed nothing");
    }
    assert_eq!(s.set_state(&id, "paused", None).unwrap_err().code, ErrorCode::InvalidState);
    s.set_state(&id, "revoked", None).unwrap();
    assert_eq!(s.set_state(&id, "active", None).unwrap_err().code, ErrorCode::RevokedIsFinal);
    assert_eq!(s.set_state(&id, "revoked", None).unwrap().state, "revoked");
    assert_eq!(s.update_key(&id, &KeyPatch::default(), None).unwrap_err().code, ErrorCode::RevokedIsFinal);
    assert_eq!(s.rotate_key(&id, 0.0, None).unwrap_err().code, ErrorCode::RevokedIsFinal);
    assert_eq!(s.set_state("key_missing", "active", None).unwrap_err().code, ErrorCode::UnknownKey);
}

#[test]
fn expiry_limits() {
    let s = KeyStore::in_memory(Options { now: Some(T0), max_lifetime_days: Some(10.0), ..Options::default() }).unwrap();
    user(&s, "svc", &["*:*"]);
    let new = |expires_at| NewKey { user_id: "svc".into(), description: String::new(), expires_at, rules: vec![], state: None };
    assert_eq!(s.create_key(&new(None), None).unwrap_err().code, ErrorCode::ExpiryRequired);
    assert_eq!(s.create_key(&new(Some(T0)), None).unwrap_err().code, ErrorCode::ExpiryInPast);
    assert_eq!(s.create_key(&new(Some(T0 + 10 * DAY + 1)), None).unwrap_err().code, ErrorCode::ExpiryTooFar);
    assert!(s.create_key(&new(Some(T0 + 10 * DAY)), None).is_ok());
    assert_eq!(s.list_keys(&KeyFilter::default()).unwrap().len(), 1);
    assert!(KeyStore::in_memory(Options { max_lifetime_days: Some(0.0), ..Options::default() }).is_err());
    let one_day = KeyStore::in_memory(Options { now: Some(T0), max_lifetime_days: Some(1.0), ..Options::default() }).unwrap();
    user(&one_day, "svc", &["*:*"]);
    let too_far = one_day.create_key(&new(Some(T0 + 2 * DAY)), None).unwrap_err();
    assert!(too_far.message.contains("is more than 1 day ahead"), "{}", too_far.message);
    assert!(s.create_key(&new(Some(T0 + 11 * DAY)), None).unwrap_err().message.contains("is more than 10 days ahead"));
}

#[test]
fn rotation_with_overlap() {
    let s = store();
    user(&s, "svc", &["*:*"]);
    let (old_id, old_secret) = key(&s, "svc", &["session:*"]);
    let issued = s.rotate_key(&old_id, 3600.0, None).unwrap();
    assert_ne!(issued.key.id, old_id);
    assert_eq!(issued.key.rules, vec!["session:*"]);
    assert_eq!(issued.key.expires_at, T0 + 30 * DAY);
    assert_eq!(reason(&s, &issued.secret, "session", "userLogon", None), Reason::Allowed);
    assert_eq!(reason(&s, &old_secret, "session", "userLogon", None), Reason::Allowed);
    s.set_now(Some(T0 + 3_600_000));
    assert_eq!(reason(&s, &old_secret, "session", "userLogon", None), Reason::Expired);
    assert_eq!(reason(&s, &issued.secret, "session", "userLogon", None), Reason::Allowed);
    let again = s.rotate_key(&issued.key.id, 0.0, None).unwrap();
    assert_eq!(reason(&s, &issued.secret, "session", "userLogon", None), Reason::Revoked);
    assert_eq!(reason(&s, &again.secret, "session", "userLogon", None), Reason::Allowed);
    let listed: Vec<String> = s.list_keys(&KeyFilter::default()).unwrap().into_iter().map(|k| k.id).collect();
    assert_eq!(listed, vec![again.key.id, issued.key.id, old_id], "newest first");
}

#[test]
fn deleting_a_user_deletes_its_keys_and_frees_rules() {
    let s = store();
    user(&s, "a", &["*:*"]);
    user(&s, "b", &["*:*"]);
    let (_, a_secret) = key(&s, "a", &["session:*"]);
    let (b_id, _) = key(&s, "b", &["session:*"]);
    assert!(s.delete_user("a", None).unwrap());
    assert!(!s.delete_user("a", None).unwrap());
    assert_eq!(reason(&s, &a_secret, "session", "x", None), Reason::UnknownKey);
    assert_eq!(s.key_count(), 1);
    assert!(s.delete_key(&b_id, None).unwrap());
    assert!(!s.delete_key(&b_id, None).unwrap());
    assert_eq!(s.key_count(), 0);
}

#[test]
fn issued_secrets_never_show_in_views() {
    let s = store();
    user(&s, "svc", &["*:*"]);
    let issued = s
        .create_key(&NewKey { user_id: "svc".into(), description: "d".into(), expires_at: Some(T0 + DAY), ..Default::default() }, None)
        .unwrap();
    let shown = format!("{:?} {:?}", issued, s.list_keys(&KeyFilter::default()).unwrap());
    assert!(!shown.contains(&issued.secret));
    assert_eq!(issued.key.hint, issued.secret[issued.secret.len() - 4..]);
}

/// Everything an admin can see of the store, to show a refused call changed nothing.
fn snapshot(s: &KeyStore) -> String {
    format!(
        "{:?} {:?} {:?} {:?}",
        s.list_users().unwrap(),
        s.list_roles().unwrap(),
        s.list_keys(&KeyFilter::default()).unwrap(),
        s.audit(&keygate_core::AuditQuery::default()).unwrap()
    )
}

#[test]
fn hostile_rules_ids_and_actors_are_refused_and_change_nothing() {
    let s = store();
    user(&s, "svc", &["*:*"]);
    s.put_role("ops", &["session:*".to_string()], None).unwrap();
    let (id, _) = key(&s, "svc", &["session:*"]);
    let before = snapshot(&s);
    let leaked = key(&s, "svc", &[]).1;
    let leaked_body = leaked.split_once('_').unwrap().1.to_string();
    s.delete_key(&s.list_keys(&KeyFilter::default()).unwrap()[0].id, None).unwrap();
    let before_with_leak_deleted = snapshot(&s);
    assert_ne!(before, before_with_leak_deleted, "the audit trail grew");

    let rules = ["éé", "a€:b", "КОТ:x", "😀:x", "ipé=1", "  éé", "Grö", &format!("{leaked}:*")];
    for rule in rules {
        let rules = vec!["session:*".to_string(), rule.to_string()];
        let new_key =
            NewKey { user_id: "svc".into(), description: "d".into(), expires_at: Some(T0 + DAY), rules: rules.clone(), state: None };
        let errors = [
            s.create_key(&new_key, None).map(drop).unwrap_err(),
            s.update_key(&id, &KeyPatch { rules: Some(rules.clone()), ..Default::default() }, None).map(drop).unwrap_err(),
            s.put_user(&UserInput { id: "svc".into(), rights: rules.clone(), ..Default::default() }, None).map(drop).unwrap_err(),
            s.put_role("ops", &rules, None).map(drop).unwrap_err(),
            keygate_core::validate_rule(rule).unwrap_err(),
        ];
        for err in errors {
            assert_eq!(err.code, ErrorCode::InvalidRule, "{rule}: {err}");
            assert!(!err.message.contains(&leaked_body), "{}", err.message);
        }
    }

    let bidi_actor = "ops\u{202E}nimda";
    let refused_ids = [
        s.put_user(&UserInput { id: leaked.clone(), ..Default::default() }, None).map(drop).unwrap_err(),
        s.put_user(&UserInput { id: format!("svc.{leaked}"), ..Default::default() }, None).map(drop).unwrap_err(),
        s.put_role(&leaked, &[], None).map(drop).unwrap_err(),
        s.put_user(&UserInput { id: "svc\u{2066}x".into(), ..Default::default() }, None).map(drop).unwrap_err(),
        s.put_role("svc", &[], Some(bidi_actor)).map(drop).unwrap_err(),
        s.delete_key(&id, Some(&format!("ci {leaked}"))).map(drop).unwrap_err(),
        s.set_state(&id, "suspended", Some("\u{200F}")).map(drop).unwrap_err(),
        s.update_key(&id, &KeyPatch { description: Some(format!("key: {leaked}")), ..Default::default() }, None).map(drop).unwrap_err(),
        s.create_key(
            &NewKey { user_id: "svc".into(), description: leaked.clone(), expires_at: Some(T0 + DAY), ..Default::default() },
            None,
        )
        .map(drop)
        .unwrap_err(),
    ];
    for err in refused_ids {
        assert_eq!(err.code, ErrorCode::InvalidArgument, "{err}");
        assert!(!err.message.contains(&leaked_body), "{}", err.message);
        assert!(!err.message.contains('\u{202E}') && !err.message.contains('\u{2066}'), "{}", err.message);
    }
    assert_eq!(snapshot(&s), before_with_leak_deleted, "refused calls changed nothing");
    assert!(!snapshot(&s).contains(&leaked_body), "the secret never reached the audit trail");

    let hint =
        s.put_user(&UserInput { id: "svc".into(), rights: vec!["session::userLogon".into()], ..Default::default() }, None).unwrap_err();
    assert!(hint.message.contains("did you mean session:userLogon?"), "{}", hint.message);
}

#[test]
fn webdav_checks_agree_with_their_explanations_and_tell_the_memo_what_it_needs() {
    let s = store();
    user(&s, "svc", &["session:*", "dav=* docs/*"]);
    let (id, secret) = key(&s, "svc", &["session:get*", "dav=GET docs/*", "ip=10.0.0.0/8"]);
    let call = DavCall { secret: secret.as_bytes(), method: b"get", path: b"/docs/a.txt", ip: Some(b"10.1.2.3") };
    let verdict = s.check_dav(call);
    assert_eq!(
        (verdict.reason, verdict.known_key, verdict.depends_on_ip, verdict.transient, verdict.first_check),
        (Reason::Allowed, true, true, false, true)
    );
    assert!(s.is_allowed_dav(call));
    let explained = s.explain_dav(call);
    assert_eq!((explained.reason, explained.matched_rule.as_deref()), (Reason::Allowed, Some("dav=GET docs/*")));
    assert_eq!(s.explain_key_dav(&id, DavCall { secret: b"", ..call }), explained);
    for (method, path, reason) in [
        (&b"PUT"[..], &b"docs/a.txt"[..], Reason::NoMatchingRule),
        (b"GET", b"other/a.txt", Reason::UserLacksRight),
        (b"GET", b"docs/../a.txt", Reason::InvalidRequest),
    ] {
        let call = DavCall { method, path, ..call };
        assert_eq!((s.check_dav(call).reason, s.explain_dav(call).reason), (reason, reason));
    }
    // The same strings as an API call are decided by the API rules alone.
    let api = Call { secret: secret.as_bytes(), service: b"session", api: b"getX", ip: Some(b"10.1.2.3") };
    assert_eq!(s.explain(api).matched_rule.as_deref(), Some("session:get*"));
    let unknown = DavCall { secret: b"kg_nope", ..call };
    assert_eq!((s.check_dav(unknown).reason, s.check_dav(unknown).known_key), (Reason::MalformedKey, false));
}

/// A check within `MEMO_HORIZON_MS` of the key's expiry is transient, so the memo never
/// remembers an answer that would outlive the key; one made earlier is not (it may be
/// remembered), and the denial of an expired key is final, so not transient either.
#[test]
fn a_check_near_the_key_s_expiry_is_transient_and_no_other_is() {
    use keygate_core::memo::MEMO_HORIZON_MS;
    let s = store();
    user(&s, "svc", &["session:*"]);
    let (_, secret) = key(&s, "svc", &["session:get*"]);
    let expires = T0 + 30 * DAY;
    let call = Call { secret: secret.as_bytes(), service: b"session", api: b"getInfo", ip: None };
    // Checked once first: a key's first check is never remembered anyway.
    s.check(call);
    for (now, reason, transient) in [
        (T0, Reason::Allowed, false),
        (expires - MEMO_HORIZON_MS - 1, Reason::Allowed, false),
        (expires - MEMO_HORIZON_MS, Reason::Allowed, true),
        (expires - 1, Reason::Allowed, true),
        (expires, Reason::Expired, false),
        (expires + DAY, Reason::Expired, false),
    ] {
        s.set_now(Some(now));
        let verdict = s.check(call);
        assert_eq!((verdict.reason, verdict.transient), (reason, transient), "{} ms before expiry", expires - now);
        let denied = s.check(Call { api: b"putInfo", ..call });
        let expected = if reason == Reason::Allowed { Reason::NoMatchingRule } else { reason };
        assert_eq!((denied.reason, denied.transient), (expected, transient), "a denial too, {} ms before expiry", expires - now);
    }
}

/// Only a key's first check (since it was created or changed) says so (the memo leaves it
/// out); diagnoses do not count as checks, denied checks do, and an unknown secret is never
/// a first check.
#[test]
fn only_a_key_s_first_check_is_marked_first() {
    let s = store();
    user(&s, "svc", &["session:*"]);
    let (id, secret) = key(&s, "svc", &["session:get*"]);
    let call = Call { secret: secret.as_bytes(), service: b"session", api: b"getInfo", ip: None };
    assert_eq!(s.explain(call).reason, Reason::Allowed);
    assert_eq!(s.explain_key(&id, call).reason, Reason::Allowed);
    let first = s.check(Call { api: b"other", ..call });
    assert_eq!((first.reason, first.first_check), (Reason::NoMatchingRule, true), "a denied first check counts");
    for _ in 0..3 {
        let again = s.check(call);
        assert_eq!((again.reason, again.known_key, again.first_check), (Reason::Allowed, true, false));
    }
    let (_, other) = key(&s, "svc", &[]);
    assert!(s.check(Call { secret: other.as_bytes(), ..call }).first_check, "each key has its own first check");
    let unknown = s.check(Call { secret: b"kg_nope", ..call });
    assert!(!unknown.known_key && !unknown.first_check);
    // A change replaces the key's record: its next check is a first check again.
    s.set_state(&id, "suspended", None).unwrap();
    let changed = s.check(call);
    assert_eq!((changed.reason, changed.first_check), (Reason::Suspended, true));
    assert!(!s.check(call).first_check);
}

/// A check begun with `begin_check` decides as of the instant it began: the registry and the
/// clock it reads are both those of that instant, even if the clock moves before it ends.
#[test]
fn a_pending_check_decides_as_of_the_instant_it_began() {
    let s = store();
    user(&s, "svc", &["session:*"]);
    let issued = s
        .create_key(
            &NewKey { user_id: "svc".into(), description: "t".into(), expires_at: Some(T0 + 10_000), rules: vec![], state: None },
            None,
        )
        .unwrap();
    let call = Call { secret: issued.secret.as_bytes(), service: b"session", api: b"get", ip: None };
    let pending = s.begin_check(call.secret);
    s.set_now(Some(T0 + 20_000));
    assert_eq!(pending.check(call).reason, Reason::Allowed, "decided at T0, before the key expired");
    assert_eq!(s.check(call).reason, Reason::Expired, "a check begun after the clock moved");
}

/// The benchmark's floor (`PendingCheck::finds_key`): steps 1–2 only, whatever the call and
/// the key's state; nothing decided, no use recorded.
#[test]
fn a_pending_check_finds_a_key_by_its_secret_and_records_no_use() {
    let s = store();
    user(&s, "svc", &["session:*"]);
    let (id, secret) = key(&s, "svc", &["session:get*"]);
    let finds = |secret: &str| s.begin_check(secret.as_bytes()).finds_key(secret.as_bytes());
    assert!(finds(&secret), "a key's secret, whatever call follows");
    s.set_state(&id, "suspended", None).unwrap();
    assert!(finds(&secret), "a suspended key is still found: nothing is decided");
    let mut other = secret.clone().into_bytes();
    if let Some(last) = other.last_mut() {
        *last = if *last == b'A' { b'B' } else { b'A' };
    }
    for unknown in [String::from_utf8(other).unwrap(), "kg_x".into(), String::new(), format!("{secret}x")] {
        assert!(!finds(&unknown), "{unknown:?} names no key");
    }
    assert_eq!(s.get_key(&id).unwrap().map(|k| k.last_used_at), Some(None), "no use recorded");
}

/// `lastUsedAt`: an allowed check is a use of its key, at the store's time; a denied one is not.
#[test]
fn an_allowed_check_records_a_use_of_its_key_and_a_denied_one_does_not() {
    let s = store();
    user(&s, "svc", &["session:*"]);
    let (id, secret) = key(&s, "svc", &["session:get*"]);
    let used = || s.get_key(&id).unwrap().and_then(|k| k.last_used_at);
    let call = Call { secret: secret.as_bytes(), service: b"session", api: b"getInfo", ip: None };
    assert_eq!(s.check(Call { api: b"putInfo", ..call }).reason, Reason::NoMatchingRule);
    assert_eq!(used(), None, "a denied check is no use");
    s.set_now(Some(T0 + 5_000));
    assert_eq!(s.check(call).reason, Reason::Allowed);
    assert_eq!(used(), Some(T0 + 5_000), "an allowed check is a use, at the store's time");
}

#[test]
fn put_expecting_new_creates_only_and_existing_replaces_only_changing_nothing_when_refused() {
    use keygate_core::Expect;
    let s = store();
    user(&s, "svc", &["session:*"]);
    s.put_role("reader", &["data:*".to_string()], None).unwrap();
    let audited = s.audit(&Default::default()).unwrap().len();
    let again = UserInput { id: "svc".into(), rights: vec!["*:*".into()], ..Default::default() };
    assert_eq!(s.put_user_expecting(&again, Expect::New, None).unwrap_err().code, ErrorCode::Conflict);
    assert_eq!(s.put_role_expecting("reader", &[], Expect::New, None).unwrap_err().code, ErrorCode::Conflict);
    let ghost = UserInput { id: "ghost".into(), ..Default::default() };
    assert_eq!(s.put_user_expecting(&ghost, Expect::Existing, None).unwrap_err().code, ErrorCode::UnknownUser);
    assert_eq!(s.put_role_expecting("ghost", &[], Expect::Existing, None).unwrap_err().code, ErrorCode::UnknownRole);
    assert_eq!(s.get_user("svc").unwrap().unwrap().rights, vec!["session:*".to_string()]);
    assert_eq!(s.get_role("reader").unwrap().unwrap().rights, vec!["data:*".to_string()]);
    assert!(s.get_user("ghost").unwrap().is_none() && s.get_role("ghost").unwrap().is_none());
    assert_eq!(s.audit(&Default::default()).unwrap().len(), audited, "a refused put is not audited");
    assert_eq!(s.put_user_expecting(&again, Expect::Existing, None).unwrap().rights, vec!["*:*".to_string()]);
    assert_eq!(s.put_user_expecting(&ghost, Expect::New, None).unwrap().id, "ghost");
    assert!(s.put_role_expecting("reader", &[], Expect::Existing, None).unwrap().rights.is_empty());
    assert_eq!(s.put_role_expecting("writer", &[], Expect::New, None).unwrap().name, "writer");
    assert_eq!(Expect::parse(None).unwrap(), Expect::Any);
    assert_eq!(Expect::parse(Some("new")).unwrap(), Expect::New);
    assert_eq!(Expect::parse(Some("existing")).unwrap(), Expect::Existing);
    assert_eq!(Expect::parse(Some("NEW")).unwrap_err().code, ErrorCode::InvalidArgument);
}

#[test]
fn pages_of_keys_walk_the_listing_and_survive_the_cursor_key_deleted() {
    let s = store();
    user(&s, "svc", &["*:*"]);
    // Twelve keys: four share each instant (a frozen clock), so ties are broken by creation order.
    for i in 0..12 {
        s.set_now(Some(T0 + (i / 4) * 1000));
        key(&s, "svc", &[]);
    }
    let whole: Vec<String> = s.list_keys(&KeyFilter::default()).unwrap().into_iter().map(|k| k.id).collect();
    for limit in [1, 3, 4, 5, 11, 12, 13] {
        let (mut seen, mut after, mut pages) = (Vec::new(), None, 0);
        loop {
            let page = s.list_keys_page(&KeyPageQuery { limit: Some(limit), after: after.clone(), ..Default::default() }).unwrap();
            assert!(page.keys.len() <= limit as usize);
            seen.extend(page.keys.into_iter().map(|k| k.id));
            pages += 1;
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        assert_eq!(seen, whole, "pages of {limit}");
        assert_eq!(pages, whole.len().div_ceil(limit as usize), "no empty page after a full one (pages of {limit})");
    }
    let first = s.list_keys_page(&KeyPageQuery { limit: Some(5), ..Default::default() }).unwrap();
    assert!(s.delete_key(&whole[4], None).unwrap());
    let rest = s.list_keys_page(&KeyPageQuery { limit: Some(100), after: first.next, ..Default::default() }).unwrap();
    assert_eq!(rest.keys.into_iter().map(|k| k.id).collect::<Vec<_>>(), whole[5..].to_vec());
    assert_eq!(rest.next, None);
    for limit in [0, 1001] {
        let refused = s.list_keys_page(&KeyPageQuery { limit: Some(limit), ..Default::default() }).err().map(|e| e.code);
        assert_eq!(refused, Some(ErrorCode::InvalidArgument), "limit {limit}");
    }
}
