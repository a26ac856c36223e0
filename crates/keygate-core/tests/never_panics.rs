//! Every parser and check that takes caller text answers with a value or an
//! error for any string at all — never a panic (in the Node binding, a panic is
//! at best an INTERNAL error). Arbitrary Unicode, arbitrary bytes made text the
//! way a lossy decoder would, and strings built around the characters that
//! broke byte slicing before (multi-byte characters at every offset).

use keygate_core::internals::{
    check_actor, check_description, check_name, find_secret, generate, is_well_formed, normalise_list, parse_caller_ip, parse_rule, Glob,
    IpNet, Prefix, RuleUse,
};
use keygate_core::{validate_rule, ErrorCode};
use proptest::prelude::*;

fn exercise(text: &str) {
    match parse_rule(text) {
        Ok(rule) => {
            assert!(text.is_ascii(), "only ASCII rules parse: {text:?}");
            // The normalised text is itself a valid rule with the same text.
            assert_eq!(parse_rule(&rule.text()).map(|r| r.text()).ok(), Some(rule.text()));
        }
        Err(err) => assert_eq!(err.code, ErrorCode::InvalidRule),
    }
    if let Err(err) = validate_rule(text) {
        assert_eq!(err.code, ErrorCode::InvalidRule);
    }
    let _ = normalise_list(&[text], RuleUse::Rights);
    for result in [check_name("user id", text), check_actor(text), check_description(text)] {
        if let Err(err) = result {
            assert_eq!(err.code, ErrorCode::InvalidArgument);
        }
    }
    let _ = find_secret(text.as_bytes());
    let _ = IpNet::parse(text);
    let _ = parse_caller_ip(text.as_bytes());
    let _ = text.parse::<keygate_core::KeyId>();
    let _ = is_well_formed(text.as_bytes(), &Prefix::default());
    if let Some((pattern, name)) = text.split_once(':') {
        if pattern.bytes().all(|b| b.is_ascii_alphanumeric() || b"*?_-./".contains(&b)) {
            let _ = Glob::compile(pattern).matches(name.as_bytes());
        }
    }
}

/// Pieces that make parsers stumble: tags, separators, wildcards, and
/// multi-byte characters of every length, bidi controls and combining marks.
fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("ip=".to_string()),
        Just("IP=".to_string()),
        Just(":".to_string()),
        Just("::".to_string()),
        Just("/".to_string()),
        Just("*".to_string()),
        Just("?".to_string()),
        Just("_".to_string()),
        Just(" ".to_string()),
        Just("é".to_string()),
        Just("€".to_string()),
        Just("😀".to_string()),
        Just("\u{202E}".to_string()),
        Just("\u{0301}".to_string()),
        Just("\u{a0}".to_string()),
        Just("\0".to_string()),
        "[a-z0-9.]{0,6}",
        any::<char>().prop_map(String::from),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(5_000))]

    #[test]
    fn arbitrary_unicode_never_panics(text in any::<String>()) {
        exercise(&text);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        exercise(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn hostile_compositions_never_panic(pieces in proptest::collection::vec(piece(), 0..12)) {
        exercise(&pieces.concat());
    }

    #[test]
    fn an_embedded_secret_is_always_found(
        prefix in "[a-z][a-z0-9]{0,15}",
        before in "[^_]{0,20}",
        after in ".{0,20}",
    ) {
        let secret = generate(&Prefix::new(&prefix).unwrap()).unwrap().text;
        let text = format!("{before}{secret}{after}");
        prop_assert!(find_secret(text.as_bytes()).is_some());
        for err in [check_name("user id", &text), check_actor(&text), check_description(&text)]
            .into_iter()
            .filter_map(Result::err)
        {
            prop_assert!(!err.message.contains(&secret[secret.len() - 20..]), "{}", err.message);
        }
        let err = validate_rule(&text).unwrap_err();
        prop_assert_eq!(err.code, ErrorCode::InvalidRule);
        prop_assert!(!err.message.contains(&secret[secret.len() - 20..]), "{}", err.message);
    }
}

#[test]
fn every_multi_byte_character_at_every_offset() {
    for c in ['é', '€', '😀', '\u{202E}', '\u{a0}'] {
        for base in ["ip=10.0.0.1", "session:get*", "  a:b", "ip", "i"] {
            for at in 0..=base.len() {
                let mut text = base.to_string();
                text.insert(at, c);
                exercise(&text);
                assert_eq!(parse_rule(&text).unwrap_err().code, ErrorCode::InvalidRule, "{text:?}");
            }
        }
    }
}
