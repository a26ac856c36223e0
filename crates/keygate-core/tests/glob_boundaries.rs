//! The matcher's first rejects (a name's first 8 folded bytes against the pattern's literal
//! start, its length against the pattern's bounds) and the patterns they decide alone, held
//! to an independent reference (the fuzz checks' `reference_glob`, dynamic programming over bytes) at
//! the lengths where they could go wrong: literal starts of 7, 8 and 9 bytes, names around the
//! 8- and 16-byte steps of the vector fold and the 64 bytes a name is held in place, names
//! longer than that (held apart), `?` inside the first 8 bytes, patterns that start with `*`,
//! NUL and bytes from 0x80 up. Each answer is checked three ways: `Glob::matches`, an API
//! rule, and the whole decision of an in-memory store (`is_allowed`, `explain`, `explain_key`),
//! for API calls and for WebDAV requests.

// The fuzz targets' reference matcher (over raw bytes, ASCII case only), compiled here as
// `fuzz_replay` compiles it.
#[path = "../../../fuzz/src/lib.rs"]
mod fuzz_checks;

use fuzz_checks::reference_glob as reference;

use keygate_core::internals::{parse_rule, Glob, Rule};
use keygate_core::{Call, DavCall, KeyStore, NewKey, Options, Reason, UserInput};
use proptest::prelude::*;

/// Name bytes with both cases of two letters, so that near misses differ by case or by one letter.
const NAME_BYTES: &[u8] = b"aAbBzZ09_.-/";

/// Literal starts around the word the head compares (8 bytes), the vector fold's steps
/// (8, 16) and the name buffer held in place (64).
fn literal_len() -> impl Strategy<Value = usize> {
    prop_oneof![4 => 0usize..=10, 1 => 14usize..=18, 1 => 61usize..=67]
}

fn literal(len: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(proptest::sample::select(NAME_BYTES), len)
}

/// What may follow a pattern's literal start: nothing (an exact literal), `*` (a prefix),
/// or wildcards and short literals.
fn after_literal() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => Just(String::new()),
        2 => Just("*".to_string()),
        1 => Just("**".to_string()),
        1 => Just("?".to_string()),
        1 => Just("*?".to_string()),
        3 => proptest::string::string_regex("([*?]{1,2}[aAbB0_.-]{0,5}){1,3}").unwrap(),
    ]
}

/// Patterns of name bytes and wildcards: perhaps a wildcard first, a literal start of a
/// boundary length with perhaps one `?` in its first 9 bytes, then what may follow it.
fn pattern() -> impl Strategy<Value = String> {
    (
        prop_oneof![6 => Just(""), 1 => Just("*"), 1 => Just("?"), 1 => Just("**"), 1 => Just("*?")],
        literal_len().prop_flat_map(literal),
        proptest::option::weighted(0.2, 0usize..9),
        after_literal(),
    )
        .prop_map(|(lead, mut literal, question, rest)| {
            if let Some(at) = question.filter(|&at| at < literal.len()) {
                literal[at] = b'?';
            }
            format!("{lead}{}{rest}", String::from_utf8(literal).unwrap())
        })
}

/// Where an edit lands: the first 10 bytes, the last 10, around byte 64, or anywhere.
#[derive(Debug, Clone, Copy)]
enum Place {
    From(usize),
    FromEnd(usize),
    Anywhere(prop::sample::Index),
}

fn place() -> impl Strategy<Value = Place> {
    prop_oneof![
        3 => (0usize..=9).prop_map(Place::From),
        1 => (60usize..=68).prop_map(Place::From),
        2 => (0usize..=9).prop_map(Place::FromEnd),
        1 => any::<prop::sample::Index>().prop_map(Place::Anywhere),
    ]
}

/// One byte changed, added or removed.
#[derive(Debug, Clone, Copy)]
enum Edit {
    Change(Place, u8),
    Add(Place, u8),
    Remove(Place),
    FlipCase(Place),
}

fn edit(bytes: impl Strategy<Value = u8> + Clone) -> impl Strategy<Value = Edit> {
    prop_oneof![
        (place(), bytes.clone()).prop_map(|(p, b)| Edit::Change(p, b)),
        (place(), bytes).prop_map(|(p, b)| Edit::Add(p, b)),
        place().prop_map(Edit::Remove),
        place().prop_map(Edit::FlipCase),
    ]
}

fn apply(name: &mut Vec<u8>, edit: Edit) {
    let at = |place: Place, len: usize| match place {
        Place::From(i) => i,
        Place::FromEnd(i) => len.saturating_sub(1 + i),
        Place::Anywhere(index) => index.index(len.max(1)),
    };
    let len = name.len();
    match edit {
        Edit::Change(place, b) => {
            if let Some(slot) = name.get_mut(at(place, len)) {
                *slot = b;
            }
        }
        Edit::Add(place, b) => {
            let i = at(place, name.len() + 1).min(name.len());
            name.insert(i, b);
        }
        Edit::Remove(place) => {
            let i = at(place, name.len());
            if i < name.len() {
                name.remove(i);
            }
        }
        Edit::FlipCase(place) => {
            if let Some(slot) = name.get_mut(at(place, len)) {
                *slot ^= if slot.is_ascii_alphabetic() { 0x20 } else { 0 };
            }
        }
    }
}

/// Runs a star may stand for: none or short mostly, sometimes long enough to take the
/// name past 64 bytes (held apart) or past 256 (no valid name).
fn star_fill() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => proptest::collection::vec(proptest::sample::select(NAME_BYTES), 0..=3),
        2 => proptest::collection::vec(proptest::sample::select(NAME_BYTES), 4..=40),
        1 => proptest::collection::vec(proptest::sample::select(NAME_BYTES), 60..=240),
    ]
}

/// A name the pattern matches (stars and `?` filled at random, letters' case flipped at
/// random), then up to two edits, so that near misses are as common as matches.
fn name_for(pattern: &str, edit_bytes: impl Strategy<Value = u8> + Clone) -> impl Strategy<Value = Vec<u8>> {
    let pattern = pattern.as_bytes().to_vec();
    let stars = pattern.iter().filter(|&&b| b == b'*').count();
    let questions = pattern.iter().filter(|&&b| b == b'?').count();
    (
        proptest::collection::vec(star_fill(), stars),
        proptest::collection::vec(proptest::sample::select(NAME_BYTES), questions),
        any::<u64>(),
        proptest::collection::vec(edit(edit_bytes), 0..=2),
    )
        .prop_map(move |(fills, ones, case_flips, edits)| {
            let (mut fills, mut ones) = (fills.into_iter(), ones.into_iter());
            let mut name = Vec::new();
            for &c in &pattern {
                match c {
                    b'*' => name.extend(fills.next().unwrap_or_default()),
                    b'?' => name.extend(ones.next()),
                    c => name.push(c),
                }
            }
            for (i, b) in name.iter_mut().enumerate() {
                if b.is_ascii_alphabetic() && case_flips >> (i % 64) & 1 == 1 {
                    *b ^= 0x20;
                }
            }
            for e in edits {
                apply(&mut name, e);
            }
            name
        })
}

fn name_byte() -> impl Strategy<Value = u8> + Clone {
    proptest::sample::select(NAME_BYTES)
}

/// Any byte at all, NUL and those from 0x80 up often.
fn any_byte() -> impl Strategy<Value = u8> + Clone {
    prop_oneof![proptest::sample::select(&[0u8, 0x7F, 0x80, 0xC1, 0xC3, 0xE1, 0xFF, b'*', b'?', b':'][..]), any::<u8>(), name_byte()]
}

fn pattern_and_name() -> impl Strategy<Value = (String, Vec<u8>)> {
    pattern().prop_flat_map(|p| {
        let name = name_for(&p, name_byte());
        (Just(p), name)
    })
}

fn api_rule(service: &str, api: &str) -> keygate_core::internals::Rule {
    parse_rule(&format!("{service}:{api}")).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(20_000))]

    #[test]
    fn names_near_boundary_patterns_match_as_the_reference((p, n) in pattern_and_name()) {
        prop_assert_eq!(Glob::compile(&p).matches(&n), reference(p.as_bytes(), &n), "pattern {:?} name {:?}", p, String::from_utf8_lossy(&n));
    }

    /// The same with edits of any byte value (NUL, 0x80 and up, wildcards, `:`).
    #[test]
    fn names_with_any_bytes_match_as_the_reference(
        (p, n) in pattern().prop_flat_map(|p| { let name = name_for(&p, any_byte()); (Just(p), name) })
    ) {
        prop_assert_eq!(Glob::compile(&p).matches(&n), reference(p.as_bytes(), &n), "pattern {:?} name {:?}", p, n);
    }

    /// Both halves of an API rule: its service and api each decided by their own rejects.
    #[test]
    fn api_rules_near_their_names_match_as_the_reference(
        (s, sn) in pattern_and_name(),
        (a, an) in pattern_and_name(),
    ) {
        prop_assume!(!s.is_empty() && !a.is_empty());
        let Rule::Api(rule) = api_rule(&s, &a) else { panic!("api rule expected") };
        let expected = reference(s.as_bytes(), &sn) && reference(a.as_bytes(), &an);
        prop_assert_eq!(rule.matches(&sn, &an), expected, "rule {}:{} on {:?} {:?}", s, a, String::from_utf8_lossy(&sn), String::from_utf8_lossy(&an));
    }
}

// ---- patterns and names of raw text: NUL and non-ASCII in either --------------------

fn raw_pattern() -> impl Strategy<Value = String> {
    proptest::collection::vec(proptest::sample::select(&["a", "A", "b", "\0", "\u{7f}", "\u{e9}", "\u{c9}", "*", "?"][..]), 0..=12)
        .prop_map(|pieces| pieces.concat())
}

fn raw_name() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(proptest::sample::select(&[b'a', b'A', b'b', 0, 0x7F, 0xC3, 0xA9, 0x89, 0xE9, 0xC9, 0x80][..]), 0..=20)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(20_000))]

    /// `Glob::compile` takes any text and `matches` any bytes: NUL pads a short name's head
    /// exactly as the end of the name does, and 0xC3 is not 0xE3 (no case beyond ASCII).
    #[test]
    fn raw_patterns_match_raw_names_as_the_reference(p in raw_pattern(), n in raw_name()) {
        prop_assert_eq!(Glob::compile(&p).matches(&n), reference(p.as_bytes(), &n), "pattern {:?} name {:?}", p, n);
    }
}

/// Every literal length from 0 to 18 and around 64, in every form a literal start takes
/// (alone, before `*`, after `*`, beside `?`, with `?` at each of its first 9 places),
/// against the matching name and each of its one-byte edits at the first and last 10
/// places and around byte 64: every change of the first rejects shows here.
#[test]
fn every_one_byte_edit_of_boundary_literals_matches_as_the_reference() {
    let alphabet = b"aB0_.-/cD9";
    let mut checked = 0usize;
    for len in (0..=18).chain(30..=34).chain(60..=68) {
        let literal: String = (0..len).map(|i| char::from(alphabet[i % alphabet.len()])).collect();
        let mut patterns =
            vec![literal.clone(), format!("{literal}*"), format!("*{literal}"), format!("{literal}?"), format!("?{literal}")];
        patterns.extend([
            format!("{literal}**"),
            format!("{literal}*x"),
            format!("{literal}*?*"),
            format!("*{literal}*"),
            format!("{literal}*a*"),
        ]);
        for q in 0..len.min(9) {
            let mut with_q = literal.clone().into_bytes();
            with_q[q] = b'?';
            let with_q = String::from_utf8(with_q).unwrap();
            patterns.extend([with_q.clone(), format!("{with_q}*")]);
        }
        for pattern in &patterns {
            let glob = Glob::compile(pattern);
            for fill in [&b""[..], b"xY", &[b'q'; 70]] {
                let name: Vec<u8> = pattern
                    .bytes()
                    .flat_map(|b| {
                        if b == b'*' {
                            fill.to_vec()
                        } else if b == b'?' {
                            vec![b'Q']
                        } else {
                            vec![b]
                        }
                    })
                    .collect();
                let upper = name.to_ascii_uppercase();
                let mut names = vec![name.clone(), upper];
                let places: Vec<usize> =
                    (0..=10).chain(name.len().saturating_sub(10)..=name.len()).chain(58..=70).filter(|&i| i <= name.len()).collect();
                for &i in &places {
                    for b in [b'a', b'B', b'x', 0, 0xC3, 0x80, b'*'] {
                        let mut added = name.clone();
                        added.insert(i, b);
                        names.push(added);
                        if i < name.len() {
                            let mut changed = name.clone();
                            changed[i] = b;
                            names.push(changed);
                        }
                    }
                    if i < name.len() {
                        let mut removed = name.clone();
                        removed.remove(i);
                        names.push(removed);
                        let mut flipped = name.clone();
                        flipped[i] ^= if flipped[i].is_ascii_alphabetic() { 0x20 } else { 0 };
                        names.push(flipped);
                    }
                }
                for n in &names {
                    assert_eq!(
                        glob.matches(n),
                        reference(pattern.as_bytes(), n),
                        "pattern {pattern:?} name {:?}",
                        String::from_utf8_lossy(n)
                    );
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 100_000, "{checked}");
}

/// The empty pattern, `*`, `**`, `?` and `*?` against the empty name, NUL and the
/// names around 8 bytes of NUL or 0xFF (a head word of zeros, or of ones).
#[test]
fn degenerate_patterns_against_heads_of_zeros_and_ones() {
    for pattern in ["", "*", "**", "?", "*?", "?*", "\0", "\0*", "\0\0\0\0\0\0\0\0", "\0\0\0\0\0\0\0\0\0"] {
        let glob = Glob::compile(pattern);
        for byte in [0u8, 0xFF, b'a'] {
            for len in 0..=17 {
                let name = vec![byte; len];
                assert_eq!(glob.matches(&name), reference(pattern.as_bytes(), &name), "pattern {pattern:?} name {name:?}");
            }
        }
    }
}

// ---- the whole decision -----------------------------------------------------------

const T0: i64 = 1_800_000_000_000;
const DAY: i64 = 86_400_000;

/// An in-memory store with user `u` holding `rights` and one key of it holding `rules`.
fn store_with(rights: &[String], rules: &[String]) -> (KeyStore, String, String) {
    let store = KeyStore::in_memory(Options { now: Some(T0), ..Default::default() }).unwrap();
    store.put_user(&UserInput { id: "u".into(), rights: rights.to_vec(), ..Default::default() }, None).unwrap();
    let issued = store
        .create_key(&NewKey { user_id: "u".into(), expires_at: Some(T0 + DAY), rules: rules.to_vec(), ..Default::default() }, None)
        .unwrap();
    (store, issued.key.id, issued.secret)
}

fn is_valid_name(name: &[u8]) -> bool {
    (1..=256).contains(&name.len()) && name.iter().all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'/'))
}

/// A list of API rules (sometimes more than 16: an indexed list), a rule of it the call's
/// names are made from, and the user's right: all rights, or one rule of the list.
#[allow(clippy::type_complexity)]
fn api_case() -> impl Strategy<Value = (Vec<(String, String)>, Option<usize>, Vec<u8>, Vec<u8>)> {
    let rule = (pattern(), pattern()).prop_filter("a pattern is not empty", |(s, a)| !s.is_empty() && !a.is_empty()).boxed();
    let rules = prop_oneof![3 => proptest::collection::vec(rule.clone(), 1..=4), 1 => proptest::collection::vec(rule, 15..=24)];
    rules.prop_flat_map(|rules| {
        let n = rules.len();
        (0..n, proptest::option::of(0..n)).prop_flat_map(move |(from, right)| {
            let (s, a) = rules[from].clone();
            (Just(rules.clone()), Just(right), name_for(&s, any_byte()), name_for(&a, name_byte()))
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1_500))]

    /// `is_allowed` and `explain` over an in-memory store: the user's right, then the first
    /// of the key's rules (list order) matching by the reference, else the denial.
    #[test]
    fn api_decisions_follow_the_reference((rules, right, service, api) in api_case()) {
        let texts: Vec<String> = rules.iter().map(|(s, a)| format!("{s}:{a}")).collect();
        let rights = match right {
            Some(at) => vec![texts[at].clone()],
            None => vec!["*:*".to_string()],
        };
        let (store, key_id, secret) = store_with(&rights, &texts);
        let rule_matches = |(s, a): &(String, String)| reference(s.as_bytes(), &service) && reference(a.as_bytes(), &api);
        let first = rules.iter().position(rule_matches);
        let (reason, matched) = if !is_valid_name(&service) || !is_valid_name(&api) {
            (Reason::InvalidRequest, None)
        } else if right.is_some_and(|at| !rule_matches(&rules[at])) {
            (Reason::UserLacksRight, None)
        } else if let Some(at) = first {
            (Reason::Allowed, Some(texts[at].clone()))
        } else {
            (Reason::NoMatchingRule, None)
        };
        let call = Call { secret: secret.as_bytes(), service: &service, api: &api, ip: None };
        let what = format!("rules {texts:?} rights {rights:?} call {:?} {:?}", String::from_utf8_lossy(&service), String::from_utf8_lossy(&api));
        prop_assert_eq!(store.is_allowed(call), reason == Reason::Allowed, "{}", what);
        let explained = store.explain(call);
        prop_assert_eq!(explained.reason, reason, "{}", what);
        if reason == Reason::Allowed {
            prop_assert_eq!(explained.matched_rule, matched, "{}", what);
        }
        let by_id = store.explain_key(&key_id, call);
        prop_assert_eq!(by_id.reason, reason, "explain_key: {}", what);
    }
}

// ---- WebDAV: paths up to 1,024 bytes, held apart past 64 -----------------------------

const PATH_BYTES: &[u8] = b"aAbBzZ09_.-~";

/// A path pattern: segments of a boundary length (wildcards among them) joined by `/`.
fn path_pattern() -> impl Strategy<Value = String> {
    (
        proptest::bool::ANY,
        proptest::collection::vec(
            prop_oneof![
                3 => literal_len().prop_flat_map(|len| proptest::collection::vec(proptest::sample::select(PATH_BYTES), len.max(1))),
                1 => Just(b"*".to_vec()),
                1 => Just(b"?*".to_vec()),
            ],
            1..=3,
        ),
        after_literal(),
    )
        .prop_map(|(lead, segments, rest)| {
            let joined = segments.iter().map(|s| String::from_utf8(s.clone()).unwrap()).collect::<Vec<_>>().join("/");
            format!("{}{joined}{rest}", if lead { "/" } else { "" })
        })
}

/// A valid request path as the README describes it: after one leading `/`, 1–1,024 path
/// characters, no empty segment but a last one, no `.` or `..` segment.
fn is_valid_path(path: &[u8]) -> bool {
    let path = path.strip_prefix(b"/").unwrap_or(path);
    let segments: Vec<&[u8]> = path.split(|&b| b == b'/').collect();
    (1..=1024).contains(&path.len())
        && path.iter().all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'/' | b'~'))
        && segments.iter().enumerate().all(|(at, s)| (!s.is_empty() || at + 1 == segments.len()) && *s != b"." && *s != b"..")
}

/// Rules that parse, each `dav=* <pattern>` (normalised text without the leading `/`), and a
/// request path made from one of them, perhaps with a leading `/` and past 64 or 1,024 bytes.
fn dav_case() -> impl Strategy<Value = (Vec<String>, Vec<u8>)> {
    let pattern = path_pattern().prop_filter("a rule that parses", |p| parse_rule(&format!("dav=* {p}")).is_ok()).boxed();
    let patterns = prop_oneof![3 => proptest::collection::vec(pattern.clone(), 1..=4), 1 => proptest::collection::vec(pattern, 15..=20)];
    patterns.prop_flat_map(|patterns| {
        let n = patterns.len();
        (0..n, proptest::bool::ANY, proptest::option::weighted(0.1, 700usize..=1030)).prop_flat_map(move |(from, slash, pad)| {
            let stripped = patterns[from].trim_start_matches('/').to_string();
            let path = name_for(&stripped, proptest::sample::select(&[b'a', b'A', b'~', b'/', 0, 0xC3][..])).prop_map(move |mut path| {
                if let Some(len) = pad {
                    while path.len() < len {
                        path.push(b'a');
                    }
                }
                if slash {
                    path.insert(0, b'/');
                }
                path
            });
            (Just(patterns.clone()), path)
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1_000))]

    #[test]
    fn dav_decisions_follow_the_reference((patterns, path) in dav_case()) {
        let texts: Vec<String> = patterns.iter().map(|p| format!("dav=* {p}")).collect();
        let (store, key_id, secret) = store_with(&["dav=* *".to_string()], &texts);
        let stripped = path.strip_prefix(b"/").unwrap_or(&path);
        let first = patterns.iter().position(|p| reference(p.trim_start_matches('/').as_bytes(), stripped));
        let (reason, matched) = match first {
            _ if !is_valid_path(&path) => (Reason::InvalidRequest, None),
            Some(at) => (Reason::Allowed, Some(format!("dav=* {}", patterns[at].strip_prefix('/').unwrap_or(&patterns[at])))),
            None => (Reason::NoMatchingRule, None),
        };
        for method in [&b"GET"[..], b"propfind"] {
            let call = DavCall { secret: secret.as_bytes(), method, path: &path, ip: None };
            let what = format!("rules {texts:?} path {:?}", String::from_utf8_lossy(&path));
            prop_assert_eq!(store.is_allowed_dav(call), reason == Reason::Allowed, "{}", what);
            let explained = store.explain_dav(call);
            prop_assert_eq!(explained.reason, reason, "{}", what);
            prop_assert_eq!(explained.matched_rule, matched.clone(), "{}", what);
            prop_assert_eq!(store.explain_key_dav(&key_id, call).reason, reason, "explain_key_dav: {}", what);
        }
    }
}
