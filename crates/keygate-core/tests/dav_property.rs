//! WebDAV rules match request paths as the rule syntax describes: the path
//! pattern read as an anchored, ASCII case-insensitive regex (`*` any run, `/`
//! included; `?` one character), one leading `/` ignored on either side, the
//! method equal ignoring case (or `*`). Paths that are not valid requests
//! (traversal, empty segments) are never allowed, whatever the rules.

mod common;

use common::reference::pattern_regex;
use keygate_core::internals::{is_valid_path, parse_rule, DavNames, DavRule, Rule};
use proptest::prelude::*;

/// The reference: the pattern, without one leading `/`, as the rule syntax reads it.
fn as_regex(pattern: &str) -> regex::bytes::Regex {
    pattern_regex(pattern.strip_prefix('/').unwrap_or(pattern))
}

fn dav_rule(text: &str) -> Option<DavRule> {
    match parse_rule(text) {
        Ok(Rule::Dav(rule)) => Some(rule),
        Ok(_) => panic!("{text} is not a WebDAV rule"),
        Err(_) => None,
    }
}

fn matches(rule: &DavRule, method: &str, path: &str) -> bool {
    rule.matches(&DavNames::new(method.as_bytes(), path.as_bytes()))
}

// Small alphabets make matches and near misses frequent; `/` and `.` make segments.
fn pattern() -> impl Strategy<Value = String> {
    proptest::string::string_regex("/?[aAbB./~_*?-]{1,14}").unwrap()
}

fn path() -> impl Strategy<Value = String> {
    proptest::string::string_regex("/?[aAbB./~_-]{1,16}").unwrap()
}

fn method() -> impl Strategy<Value = String> {
    prop_oneof![Just("GET".to_string()), Just("get".to_string()), Just("PUT".to_string()), Just("PropFind".to_string())]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(20_000))]

    #[test]
    fn a_valid_rule_matches_as_the_regex_does(p in pattern(), n in path(), m in method(), rule_method in method()) {
        // Patterns the parser refuses (empty or dot segments) are skipped; the unit tests cover them.
        let Some(rule) = dav_rule(&format!("dav={rule_method} {p}")) else { return Ok(()) };
        let path_matches = as_regex(&p).is_match(n.strip_prefix('/').unwrap_or(&n).as_bytes());
        let expected = path_matches && rule_method.eq_ignore_ascii_case(&m);
        prop_assert_eq!(matches(&rule, &m, &n), expected, "rule {:?} request {} {:?}", rule.text, m, n);
        let any = dav_rule(&format!("dav=* {p}")).unwrap();
        prop_assert_eq!(matches(&any, &m, &n), path_matches, "rule {:?} request {} {:?}", any.text, m, n);
    }

    #[test]
    fn the_normalised_rule_matches_as_the_rule_written(p in pattern(), n in path(), m in method()) {
        let Some(rule) = dav_rule(&format!("dav={m} {p}")) else { return Ok(()) };
        let again = dav_rule(&rule.text).unwrap();
        prop_assert_eq!(&again.text, &rule.text, "normalising is idempotent");
        prop_assert_eq!(matches(&again, &m, &n), matches(&rule, &m, &n));
    }

    #[test]
    fn a_path_is_valid_exactly_when_its_segments_are(n in path()) {
        let stripped = n.strip_prefix('/').unwrap_or(&n);
        let segments: Vec<&str> = stripped.split('/').collect();
        let last = segments.len() - 1;
        let expected = !stripped.is_empty()
            && segments.iter().enumerate().all(|(at, s)| (!s.is_empty() || at == last) && *s != "." && *s != "..");
        prop_assert_eq!(is_valid_path(n.as_bytes()), expected, "{:?}", n);
    }
}

#[test]
fn star_crosses_slashes_question_does_not_match_nothing() {
    let rule = dav_rule("dav=GET /docs/*.pdf").unwrap();
    assert_eq!(&*rule.text, "dav=GET docs/*.pdf");
    assert!(matches(&rule, "GET", "docs/a/b/c.PDF"));
    assert!(matches(&rule, "get", "/DOCS/.pdf"));
    assert!(!matches(&rule, "GET", "docs.pdf"));
    let one = dav_rule("dav=* a/?").unwrap();
    assert!(matches(&one, "MKCOL", "a//"), "? matches a /, but such a path never reaches the rule (invalid)");
    assert!(!is_valid_path(b"a//"));
    assert!(!matches(&one, "MKCOL", "a/"));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    /// Paths longer than any API name (up to the 1,024 limit), against patterns with many stars.
    #[test]
    fn long_paths_match_as_the_regex_does(p in "[ab/?]{0,4}(\\*[ab/?]{0,6}){1,6}", n in "[abAB/]{200,1024}") {
        let Some(rule) = dav_rule(&format!("dav=* {p}")) else { return Ok(()) };
        let expected = as_regex(&p).is_match(n.strip_prefix('/').unwrap_or(&n).as_bytes());
        prop_assert_eq!(matches(&rule, "GET", &n), expected, "rule {:?}", rule.text);
    }
}
