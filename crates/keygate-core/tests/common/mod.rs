//! Helpers shared by the integration tests (each test file includes this module).
#![allow(dead_code)]

pub mod reference;
pub mod world;

use std::sync::atomic::{AtomicBool, Ordering};

use keygate_core::{ErrorCode, KeyStore, NewKey, UserInput};

/// 200 admin calls refused (an unknown role) and 200 written, on this thread, while
/// another thread reads and verifies the audit trail without pause: every read must
/// succeed and find the chain whole. An admin call holds its transaction open across
/// several backend calls, so a read run inside it failed (or ended it early). Returns
/// the number of entries written.
pub fn audit_reads_beside_admin_calls(store: &KeyStore) -> u64 {
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let reader = scope.spawn(|| {
            let mut reads = 0;
            while !done.load(Ordering::Acquire) {
                let report = store.verify_audit().unwrap();
                assert!(report.ok, "{report:?}");
                store.audit(&Default::default()).unwrap();
                reads += 1;
            }
            reads
        });
        for i in 0..200 {
            let refused = store.put_user(&UserInput { id: format!("u{i}"), roles: vec!["ghost".into()], ..Default::default() }, None);
            assert_eq!(refused.unwrap_err().code, ErrorCode::UnknownRole);
            store.put_role(&format!("r{i}"), &["api:*".into()], None).unwrap();
        }
        done.store(true, Ordering::Release);
        assert!(reader.join().unwrap() > 0);
    });
    200
}

/// Stores user `svc` (all rights) and one key of it, expiring in a day, with
/// these rules; both calls are audited as `alice`. Returns the key's id and secret.
pub fn seed_with(store: &KeyStore, rules: &[&str]) -> (String, String) {
    store.put_user(&UserInput { id: "svc".into(), rights: vec!["*:*".into()], ..Default::default() }, Some("alice")).unwrap();
    let issued = store
        .create_key(
            &NewKey {
                user_id: "svc".into(),
                description: "nightly".into(),
                expires_at: Some(keygate_core::internals::system_now() + world::DAY),
                rules: world::strings(rules),
                state: None,
            },
            Some("alice"),
        )
        .unwrap();
    (issued.key.id, issued.secret)
}
