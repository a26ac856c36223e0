//! The compiled matcher must give the same answers as a plain reference glob
//! matcher, and as the anchored case-insensitive regex the rule syntax describes.

use keygate_core::internals::Glob;
use proptest::prelude::*;

/// Textbook recursive glob: obviously right, exponential at worst, fine for short inputs.
fn reference(pattern: &[u8], name: &[u8]) -> bool {
    match pattern.split_first() {
        None => name.is_empty(),
        Some((b'*', rest)) => (0..=name.len()).any(|skip| reference(rest, &name[skip..])),
        Some((b'?', rest)) => !name.is_empty() && reference(rest, &name[1..]),
        Some((c, rest)) => name.first().is_some_and(|n| n.eq_ignore_ascii_case(c)) && reference(rest, &name[1..]),
    }
}

fn as_regex(pattern: &str) -> regex::bytes::Regex {
    let mut re = String::from("(?i-u)^");
    for c in pattern.chars() {
        match c {
            '*' => re.push_str(".*"),
            '?' => re.push('.'),
            c => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    re.push('$');
    regex::bytes::Regex::new(&re).unwrap()
}

// Small alphabets make matches (and near misses) frequent.
fn pattern() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[abAB./_*?-]{1,10}").unwrap()
}

fn name() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[abAB./_-]{0,12}").unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(20_000))]

    #[test]
    fn compiled_glob_agrees_with_reference(p in pattern(), n in name()) {
        let expected = reference(p.as_bytes(), n.as_bytes());
        prop_assert_eq!(Glob::compile(&p).matches(n.as_bytes()), expected, "pattern {:?} name {:?}", p, n);
        prop_assert_eq!(as_regex(&p).is_match(n.as_bytes()), expected, "regex disagrees: {:?} {:?}", p, n);
    }

    #[test]
    fn api_rules_agree_with_reference(s in pattern(), a in pattern(), sn in name(), an in name()) {
        let rule = keygate_core::internals::parse_rule(&format!("{s}:{a}")).unwrap();
        let keygate_core::internals::Rule::Api(rule) = rule else { panic!("api rule expected") };
        let expected = reference(s.as_bytes(), sn.as_bytes()) && reference(a.as_bytes(), an.as_bytes());
        prop_assert_eq!(rule.matches(sn.as_bytes(), an.as_bytes()), expected);
    }
}

#[test]
fn many_stars_over_a_long_name() {
    // The single-backtrack algorithm answers this without exponential blow-up.
    let pattern = "*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b";
    assert!(!Glob::compile(pattern).matches("a".repeat(256).as_bytes()));
    assert!(Glob::compile(pattern).matches(format!("{}b", "a".repeat(255)).as_bytes()));
}
