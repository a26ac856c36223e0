//! The compiled matcher must give the same answers as a plain reference glob
//! matcher, and as the anchored case-insensitive regex the rule syntax describes.

mod common;

use common::reference::pattern_regex;
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
        prop_assert_eq!(pattern_regex(&p).is_match(n.as_bytes()), expected, "regex disagrees: {:?} {:?}", p, n);
    }

    /// Literals around 8 bytes long, alone or before wildcards, and names made from
    /// them with one byte changed, added or removed anywhere: the matcher compares a
    /// name's first 8 bytes and its length first, and decides some patterns by those alone.
    #[test]
    fn names_near_a_pattern_agree_with_reference(
        (p, n) in proptest::string::string_regex("[abAB./_-]{0,10}([*?][abAB./_*?-]{0,4})?").unwrap().prop_flat_map(name_for)
    ) {
        prop_assert_eq!(Glob::compile(&p).matches(n.as_bytes()), reference(p.as_bytes(), n.as_bytes()), "pattern {:?} name {:?}", p, n);
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

// ---- the linear-time matcher's paths: `?` runs found by shift-and, literal runs
// found by substring search, many stars, empty segments, names at the length limit.
// The textbook reference is exponential on these; the regex (linear) is the reference.

/// Patterns of rule length: pieces of `a`/`b`/`?` (case varied) between runs of stars.
fn long_pattern() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[aAbB?]{0,6}(\\*{1,2}[aAbB?]{0,24}){0,8}").unwrap().prop_filter("rule length", |p| p.len() <= 254)
}

/// A name the pattern matches (stars and `?` filled at random), then perhaps one byte
/// changed, inserted or removed, so that near misses are as common as matches.
fn name_for(pattern: String) -> impl Strategy<Value = (String, String)> {
    let stars = pattern.bytes().filter(|&b| b == b'*').count();
    let questions = pattern.bytes().filter(|&b| b == b'?').count();
    (
        proptest::collection::vec(proptest::string::string_regex("[abAB]{0,40}").unwrap(), stars),
        proptest::collection::vec(proptest::string::string_regex("[abAB]").unwrap(), questions),
        0usize..4,
        any::<prop::sample::Index>(),
        proptest::string::string_regex("[abAB]").unwrap(),
    )
        .prop_map(move |(fills, ones, edit, at, byte)| {
            let (mut fills, mut ones) = (fills.into_iter(), ones.into_iter());
            let mut name = String::new();
            for c in pattern.chars() {
                match c {
                    '*' => name.push_str(&fills.next().unwrap_or_default()),
                    '?' => name.push_str(&ones.next().unwrap_or_default()),
                    c => name.push(c),
                }
            }
            if !name.is_empty() {
                let i = at.index(name.len());
                match edit {
                    1 => name.replace_range(i..=i, &byte),
                    2 => name.insert_str(i, &byte),
                    3 => {
                        name.remove(i);
                    }
                    _ => {}
                }
            }
            (pattern.clone(), name)
        })
}

proptest! {
    // Fewer cases: each compiles a regex of up to 254 characters.
    #![proptest_config(ProptestConfig::with_cases(3_000))]

    #[test]
    fn rule_length_patterns_agree_with_the_regex((p, n) in long_pattern().prop_flat_map(name_for)) {
        prop_assert_eq!(Glob::compile(&p).matches(n.as_bytes()), pattern_regex(&p).is_match(n.as_bytes()), "pattern {:?} name {:?}", p, n);
    }

    #[test]
    fn question_runs_agree_with_the_regex(
        p in proptest::string::string_regex("[ab?]{0,3}\\*[ab?]{1,70}\\*[ab?]{0,70}\\*?[ab?]{0,3}").unwrap(),
        n in proptest::string::string_regex("[abAB]{0,256}").unwrap(),
    ) {
        prop_assert_eq!(Glob::compile(&p).matches(n.as_bytes()), pattern_regex(&p).is_match(n.as_bytes()), "pattern {:?} name {:?}", p, n);
    }

    #[test]
    fn long_names_agree_with_the_regex(p in pattern(), n in proptest::string::string_regex("[abAB./_-]{200,300}").unwrap()) {
        prop_assert_eq!(Glob::compile(&p).matches(n.as_bytes()), pattern_regex(&p).is_match(n.as_bytes()), "pattern {:?} name {:?}", p, n);
    }
}

#[test]
fn question_runs_longer_than_a_word_and_than_the_state() {
    // Shift-and states of one to four words, and a run past them (matched by the scan).
    for len in [63, 64, 65, 127, 128, 200, 256, 257, 300] {
        let run: String = (0..len).map(|i| if i % 3 == 1 { '?' } else { 'a' }).collect();
        let pattern = format!("x*{run}*y");
        let hit = format!("xbb{}cy", "a".repeat(len));
        let short = format!("x{}y", "a".repeat(len - 1));
        assert!(Glob::compile(&pattern).matches(hit.as_bytes()), "{len}");
        assert!(!Glob::compile(&pattern).matches(short.as_bytes()), "{len}");
        for near in [format!("xb{}cy", "a".repeat(len - 1)), format!("x{}by", "ab".repeat(len / 2))] {
            assert_eq!(Glob::compile(&pattern).matches(near.as_bytes()), pattern_regex(&pattern).is_match(near.as_bytes()), "{len} {near}");
        }
    }
}

#[test]
fn worst_case_shapes_answer_quickly_and_right() {
    // The shapes of issue 14's worst rights: a long run then a byte the name lacks.
    let name = "a".repeat(256);
    for k in [1, 50, 124] {
        let pattern = format!("*{}b*", "a".repeat(k));
        assert!(!Glob::compile(&pattern).matches(name.as_bytes()));
        assert!(Glob::compile(&pattern).matches(format!("{}b", "a".repeat(255)).as_bytes()));
        let question = format!("*{}?b*", "a".repeat(k));
        assert!(!Glob::compile(&question).matches(name.as_bytes()));
        assert!(Glob::compile(&question).matches(format!("{}cb", "a".repeat(200)).as_bytes()));
    }
}
