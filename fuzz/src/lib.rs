//! The checks behind keygate's fuzz targets, one public function per target.
//! Each takes the raw fuzz input and panics when keygate-core misbehaves.
//!
//! This file is compiled by the cargo-fuzz crate (fuzz/, nightly flags) and,
//! through `#[path]`, by crates/keygate-core/tests/fuzz_replay.rs on stable,
//! which replays the kept corpora and regressions in `npm test` (and by
//! tests/glob_boundaries.rs, for `reference_glob`). So it
//! uses only crates keygate-core's tests can see (keygate-core's dependencies,
//! `tempfile`), and decodes structured input with its own tiny reader instead
//! of `arbitrary`.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::sync::OnceLock;

use keygate_core::internals::{
    apply_changes, decode_pg_changes, encode_pg_changes, find_secret, generate, is_valid_path, is_valid_request, is_well_formed,
    parse_caller_ip, parse_rule, record_of, user_record, Change, DavNames, Glob, IpNet, KeyRecord, Prefix, Registry, RoleRecord, Rule,
    UserRecord, TABLES,
};
use keygate_core::{
    redact_secrets, validate_rule, Call, DavCall, ErrorCode, KeyId, KeyState, KeyStore, NewKey, Options, Reason, UserInput, UserStatus,
    MAX_RULES,
};
use serde_json::{Map, Value};

// ---- structured input ----------------------------------------------------------

/// Reads structure out of fuzz bytes; an exhausted input reads as zeros / empty.
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Input { data }
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        head
    }

    /// A length-prefixed slice (the length is one byte, so 0–255 bytes).
    pub fn bytes(&mut self) -> &'a [u8] {
        let n = self.byte() as usize;
        self.take(n)
    }

    pub fn u64(&mut self) -> u64 {
        let mut buf = [0u8; 8];
        let head = self.take(8);
        buf[..head.len()].copy_from_slice(head);
        u64::from_le_bytes(buf)
    }

    pub fn rest(&mut self) -> &'a [u8] {
        self.take(self.data.len())
    }

    pub fn choose<'t, T>(&mut self, items: &'t [T]) -> &'t T {
        &items[self.byte() as usize % items.len()]
    }
}

/// Input bytes as text: the valid UTF-8 itself, else the lossy conversion
/// (U+FFFD replacement characters are themselves good non-ASCII probes).
fn text_of(data: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(data)
}

// ---- reference pieces (written from the README's contract, not from the core's code) --------

fn is_name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'/')
}

fn is_valid_name(name: &[u8]) -> bool {
    (1..=256).contains(&name.len()) && name.iter().all(|&b| is_name_char(b))
}

/// Anchored, ASCII case-insensitive glob: `*` any run, `?` exactly one byte.
/// Dynamic programming over (pattern prefix, name prefix): obviously right, O(p·n).
pub fn reference_glob(pattern: &[u8], name: &[u8]) -> bool {
    // row[j]: pattern[..i] matches name[..j]
    let mut row = vec![false; name.len() + 1];
    row[0] = true;
    for &p in pattern {
        let mut next = vec![false; name.len() + 1];
        if p == b'*' {
            // next[j] = row[j] (empty run) or next[j-1] (one more character)
            next[0] = row[0];
            for j in 1..=name.len() {
                next[j] = row[j] || next[j - 1];
            }
        } else {
            for j in 1..=name.len() {
                next[j] = row[j - 1] && (p == b'?' || p.eq_ignore_ascii_case(&name[j - 1]));
            }
        }
        row = next;
    }
    row[name.len()]
}

/// The spec's API-rule grammar for an already trimmed, ASCII text.
fn reference_api_rule_ok(rule: &str) -> bool {
    let pattern_ok = |p: &str| !p.is_empty() && p.bytes().all(|b| b == b'*' || b == b'?' || is_name_char(b));
    match rule.split_once(':') {
        Some((service, api)) => !api.contains(':') && pattern_ok(service) && pattern_ok(api),
        None => false,
    }
}

fn is_path_char(b: u8) -> bool {
    is_name_char(b) || b == b'~'
}

/// The spec's WebDAV-rule grammar for an already trimmed, ASCII text: its normalised
/// text (`dav=`, the method upper-case, one space, the path without one leading `/`),
/// or `None`. Beyond the spec, as documented: the path pattern has no empty segment
/// but a last one, and no `.` or `..` segment (no valid request could match those).
fn reference_dav_rule(rule: &str) -> Option<String> {
    let tag = rule.get(..4)?;
    if !tag.eq_ignore_ascii_case("dav=") {
        return None;
    }
    let (method, path) = rule.get(4..)?.split_once(' ')?;
    let method_ok = method == "*" || ((1..=32).contains(&method.len()) && method.bytes().all(|b| b.is_ascii_alphabetic()));
    let path = path.strip_prefix('/').unwrap_or(path);
    let chars_ok = !path.is_empty() && path.bytes().all(|b| b == b'*' || b == b'?' || is_path_char(b));
    (method_ok && chars_ok && reference_segments_ok(path)).then(|| format!("dav={} {path}", method.to_ascii_uppercase()))
}

/// No empty segment but the last (a trailing `/`), no `.` or `..` segment.
fn reference_segments_ok(path: &str) -> bool {
    let segments: Vec<&str> = path.split('/').collect();
    segments.iter().enumerate().all(|(at, s)| (!s.is_empty() || at + 1 == segments.len()) && *s != "." && *s != "..")
}

/// A valid WebDAV request path: one leading `/` ignored, then 1–1,024 path characters
/// (no wildcards) with valid segments.
fn reference_dav_path_ok(path: &[u8]) -> bool {
    let path = path.strip_prefix(b"/").unwrap_or(path);
    let Ok(text) = std::str::from_utf8(path) else { return false };
    (1..=1024).contains(&path.len()) && path.iter().all(|&b| is_path_char(b)) && reference_segments_ok(text)
}

/// True when `text` holds something shaped like a secret (`_` then 49 base62
/// characters): the store may refuse such rules, so the reference stays silent.
fn may_hold_secret(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.iter().enumerate().any(|(i, &b)| b == b'_' && bytes.len() > i + 49 && bytes[i + 1..i + 50].iter().all(u8::is_ascii_alphanumeric))
}

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

fn base62_digit(c: u8) -> Option<u64> {
    BASE62.iter().position(|&d| d == c).map(|i| i as u64)
}

/// The documented secret shape: `<prefix>_` + 43 base62 + 6 base62 digits whose value is
/// the CRC32 of everything before them.
pub fn reference_well_formed(secret: &[u8], prefix: &str) -> bool {
    let Some(rest) = secret.strip_prefix(prefix.as_bytes()) else { return false };
    let Some(body) = rest.strip_prefix(b"_") else { return false };
    if body.len() != 49 || !body.iter().all(|&c| base62_digit(c).is_some()) {
        return false;
    }
    let (signed, checksum) = secret.split_at(secret.len() - 6);
    let value = checksum.iter().fold(0u64, |acc, &c| acc * 62 + base62_digit(c).unwrap_or(0));
    value == crc32fast::hash(signed) as u64
}

/// Six base62 digits of `value`, most significant first.
fn base62_6(mut value: u64) -> [u8; 6] {
    let mut out = [b'0'; 6];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(value % 62) as usize];
        value /= 62;
    }
    out
}

/// IPv4 addresses as IPv4-mapped IPv6 numbers, so one comparison covers both families.
fn mapped(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(a) => u128::from(a.to_ipv6_mapped()),
        IpAddr::V6(a) => u128::from(a),
    }
}

fn top_bits_equal(a: u128, b: u128, bits: u32) -> bool {
    bits == 0 || (a ^ b) >> (128 - bits) == 0
}

/// `ip=` containment per the documented rule: an IPv4 network /p is the mapped network /(96+p).
fn reference_contains(net_addr: IpAddr, prefix: u32, addr: IpAddr) -> bool {
    let bits = if net_addr.is_ipv4() { 96 + prefix } else { prefix };
    top_bits_equal(mapped(net_addr), mapped(addr), bits)
}

/// `<addr>[/<prefix>]`, prefix in canonical decimal, no host bits set.
fn reference_net(text: &str) -> Option<(IpAddr, u32)> {
    let (addr_text, prefix_text) = match text.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (text, None),
    };
    let addr: IpAddr = addr_text.parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix_text {
        None => max,
        Some(p) => {
            let canonical = !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && (p == "0" || !p.starts_with('0'));
            if !canonical || p.len() > 3 {
                return None;
            }
            let n: u32 = p.parse().ok()?;
            if n > max {
                return None;
            }
            n
        }
    };
    // No host bits: the address equals its own network.
    let bits = if addr.is_ipv4() { 96 + prefix } else { prefix };
    let value = mapped(addr);
    let host_mask = if bits == 128 { 0 } else { u128::MAX >> bits };
    (value & host_mask == 0).then_some((addr, prefix))
}

/// The caller's address: an IP, or an IPv6 with a non-empty `%zone` (ignored).
fn reference_caller_ip(text: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(text).ok()?;
    match text.split_once('%') {
        Some((addr, zone)) if !zone.is_empty() && addr.contains(':') => addr.parse().ok(),
        Some(_) => None,
        None => text.parse().ok(),
    }
}

// ---- rule_parse ---------------------------------------------------------------

pub fn rule_parse(data: &[u8]) {
    check_rule(&text_of(data));
    // Also as the text of an IP rule and of a WebDAV rule, so the fuzzer need not find `ip=` or `dav=` first.
    if data.first() == Some(&b'=') {
        check_rule(&format!("ip{}", text_of(data)));
        check_rule(&format!("dav{}", text_of(data)));
    }
}

fn check_rule(text: &str) {
    let validated = validate_rule(text);
    let parsed = parse_rule(text);
    assert_eq!(validated.as_ref().ok(), parsed.as_ref().ok().map(Rule::text).as_ref(), "validate_rule and parse_rule disagree on {text:?}");
    let trimmed = text.trim();
    match &validated {
        Ok(norm) => {
            assert!(norm.is_ascii(), "accepted a non-ASCII rule {text:?} as {norm:?}");
            assert!(!norm.is_empty() && norm.len() <= 256, "accepted {text:?} as {norm:?}");
            assert_eq!(validate_rule(norm).as_ref(), Ok(norm), "normalising {text:?} is not idempotent");
            let is_ip = norm.starts_with("ip=");
            if is_ip {
                let (addr, prefix) =
                    reference_net(&norm[3..]).unwrap_or_else(|| panic!("{text:?} normalised to {norm:?}, which the reference refuses"));
                assert!(trimmed.get(..3).is_some_and(|p| p.eq_ignore_ascii_case("ip=")), "{text:?} became {norm:?}");
                let given = reference_net(trimmed.get(3..).unwrap_or(""));
                assert_eq!(given, Some((addr, prefix)), "{text:?} normalised to another network {norm:?}");
            } else if norm.starts_with("dav=") {
                assert_eq!(reference_dav_rule(trimmed).as_ref(), Some(norm), "{text:?} normalised to {norm:?}");
            } else if !norm.contains('=') {
                assert_eq!(norm, trimmed, "an API rule's text must be the trimmed input");
                assert!(reference_api_rule_ok(norm), "accepted {text:?}, which is no API rule");
            }
        }
        Err(e) => assert_eq!(e.code, ErrorCode::InvalidRule, "{text:?} refused with {e:?}"),
    }
    // The other direction: what the spec's grammar accepts must be accepted
    // (unless the core trims differently around non-ASCII space, or a secret hides in it).
    let ascii_trimmed = text.trim_matches(|c: char| c.is_ascii_whitespace());
    let plain = ascii_trimmed == trimmed && trimmed.is_ascii() && !may_hold_secret(trimmed) && trimmed.len() <= 256;
    if plain && !trimmed.contains('=') && reference_api_rule_ok(trimmed) {
        assert!(validated.is_ok(), "refused the valid API rule {text:?}: {validated:?}");
    }
    if plain && trimmed.len() >= 3 && trimmed[..3].eq_ignore_ascii_case("ip=") && reference_net(&trimmed[3..]).is_some() {
        assert!(validated.is_ok(), "refused the valid IP rule {text:?}: {validated:?}");
    }
    if let Some(normalised) = reference_dav_rule(trimmed).filter(|_| plain) {
        assert_eq!(validated.as_ref(), Ok(&normalised), "the valid WebDAV rule {text:?}");
    }
    if !trimmed.is_ascii() {
        assert!(validated.is_err(), "accepted the non-ASCII rule {text:?}");
    }
}

// ---- ip_parse -------------------------------------------------------------------

/// Input: `<network text>\n<caller address>`; both parts also probe the other parser.
pub fn ip_parse(data: &[u8]) {
    let (net_part, caller_part) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, data),
    };
    let net_text = text_of(net_part);
    let net = check_net(&net_text);
    let caller = check_caller(caller_part);
    check_caller(net_part);
    let Some((net, net_addr, prefix)) = net else { return };
    assert!(net.contains(net_addr), "{net_text:?} does not contain its own address");
    let mut probes = vec![net_addr];
    probes.extend(caller);
    // Addresses near the network: its own bits with a fuzz-chosen tail.
    let mut tail = [0u8; 16];
    let end = &caller_part[caller_part.len().saturating_sub(16)..];
    tail[..end.len()].copy_from_slice(end);
    let noise = u128::from_le_bytes(tail);
    let base = mapped(net_addr);
    for shift in [0u32, 1, 8, 31, 32, 64, 127] {
        let v6 = std::net::Ipv6Addr::from(base ^ (noise >> shift));
        probes.push(IpAddr::V6(v6));
        probes.push(v6.to_canonical());
        probes.push(IpAddr::V4(std::net::Ipv4Addr::from((base ^ (noise >> shift)) as u32)));
    }
    for probe in probes {
        assert_eq!(net.contains(probe), reference_contains(net_addr, prefix, probe), "ip={net} contains {probe}?");
    }
}

fn check_net(text: &str) -> Option<(IpNet, IpAddr, u32)> {
    let parsed = IpNet::parse(text);
    let reference = reference_net(text);
    match (&parsed, reference) {
        (Ok(net), Some((addr, prefix))) => {
            let shown = net.to_string();
            assert_eq!(IpNet::parse(&shown).as_ref(), Ok(net), "{text:?} shows as {shown:?}, which parses differently");
            let expected = if prefix == if addr.is_ipv4() { 32 } else { 128 } { addr.to_string() } else { format!("{addr}/{prefix}") };
            assert_eq!(shown, expected, "{text:?}");
            // Through the rule parser too: `ip=<text>` is the same network.
            if let Ok(Rule::Ip(rule_net)) = parse_rule(&format!("ip={text}")) {
                assert_eq!(&rule_net, net);
            }
            Some((*net, addr, prefix))
        }
        (Err(_), None) => None,
        (Ok(net), None) => panic!("IpNet::parse accepted {text:?} as {net}, the reference refuses it"),
        (Err(why), Some(r)) => panic!("IpNet::parse refused {text:?} ({why}), the reference reads {r:?}"),
    }
}

fn check_caller(bytes: &[u8]) -> Option<IpAddr> {
    let parsed = parse_caller_ip(bytes);
    assert_eq!(parsed, reference_caller_ip(bytes), "caller address {:?}", text_of(bytes));
    parsed
}

// ---- secret_check ---------------------------------------------------------------

const PREFIXES: [&str; 5] = ["kg", "acme", "a", "abcdefghijklmnop", "k9"];

/// Modes (first byte): arbitrary bytes; a generated secret with edits; a secret
/// built by the reference from fuzz bytes, with edits.
pub fn secret_check(data: &[u8]) {
    let mut input = Input::new(data);
    let mode = input.byte() % 3;
    let prefix_text = *input.choose(&PREFIXES);
    let prefix = Prefix::new(prefix_text).expect("a valid prefix");
    let mut secret: Vec<u8> = match mode {
        0 => input.rest().to_vec(),
        1 => {
            let issued = generate(&prefix).expect("the OS random generator works");
            assert!(reference_well_formed(issued.text.as_bytes(), prefix_text), "generated {}", issued.text);
            issued.text.into_bytes()
        }
        _ => {
            let mut text = format!("{prefix_text}_").into_bytes();
            text.extend(input.take(43).iter().map(|&b| BASE62[b as usize % 62]));
            while text.len() < prefix_text.len() + 44 {
                text.push(b'0');
            }
            let crc = crc32fast::hash(&text);
            text.extend_from_slice(&base62_6(crc as u64));
            assert!(is_well_formed(&text, &prefix), "refused a well-formed secret {:?}", text_of(&text));
            text
        }
    };
    let original = secret.clone();
    check_secret(&secret, prefix_text, &prefix);
    if mode == 0 {
        return;
    }
    // Edits: (position, new byte) pairs, each checked as it lands.
    while !input.is_empty() {
        let at = input.byte() as usize;
        let value = input.byte();
        if at < secret.len() {
            secret[at] = value;
        } else if value.is_multiple_of(2) {
            secret.push(value);
        } else {
            secret.pop();
        }
        let ok = check_secret(&secret, prefix_text, &prefix);
        // A changed secret passes only if the CRC32 still holds (the reference agreed).
        if ok && secret != original {
            assert!(reference_well_formed(&secret, prefix_text));
        }
    }
}

fn check_secret(secret: &[u8], prefix_text: &str, prefix: &Prefix) -> bool {
    let ok = is_well_formed(secret, prefix);
    assert_eq!(ok, reference_well_formed(secret, prefix_text), "is_well_formed({:?}, {prefix_text})", text_of(secret));
    ok
}

// ---- glob_match -----------------------------------------------------------------

const NAME_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./";

fn to_alphabet(b: u8, wildcards: bool) -> u8 {
    if is_name_char(b) || (wildcards && (b == b'*' || b == b'?')) {
        return b;
    }
    if wildcards && b.is_multiple_of(4) {
        return if b.is_multiple_of(8) { b'*' } else { b'?' };
    }
    NAME_ALPHABET[b as usize % NAME_ALPHABET.len()]
}

/// Input: `<pattern>\0<name>`, bytes folded into the name alphabet (+ `*` `?` in the pattern).
pub fn glob_match(data: &[u8]) {
    let (pattern, name) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &data[data.len()..]),
    };
    let pattern: Vec<u8> = pattern.iter().take(300).map(|&b| to_alphabet(b, true)).collect();
    let name: Vec<u8> = name.iter().take(300).map(|&b| to_alphabet(b, false)).collect();
    let pattern_text = std::str::from_utf8(&pattern).expect("ASCII");
    let glob = Glob::compile(pattern_text);
    let expected = reference_glob(&pattern, &name);
    assert_eq!(glob.matches(&name), expected, "pattern {pattern_text:?} name {:?}", text_of(&name));
    // Between stars, every run of the pattern is searched for (substring search for a
    // literal run, shift-and for a run holding `?`) instead of compared in place; and
    // the pattern twice over gives many stars and runs past one machine word.
    for variant in [format!("*{pattern_text}*"), format!("*{pattern_text}*{pattern_text}"), format!("?{pattern_text}*?")] {
        let expected = reference_glob(variant.as_bytes(), &name);
        assert_eq!(Glob::compile(&variant).matches(&name), expected, "pattern {variant:?} name {:?}", text_of(&name));
    }
    // The same pattern as the service and the api of a rule.
    if !pattern.is_empty() && pattern.len() <= 120 {
        if let Ok(Rule::Api(rule)) = parse_rule(&format!("{pattern_text}:{pattern_text}")) {
            assert_eq!(rule.matches(&name, &name), expected, "rule {pattern_text}:{pattern_text} on {:?}", text_of(&name));
        }
    }
}

// ---- dav_match ------------------------------------------------------------------

const PATH_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./~";

/// Input: `<method byte><pattern>\0<path>`. The pattern is folded into the path
/// alphabet (+ `*` `?`); the path is used raw half the time (any bytes: hostile
/// requests) and folded the other half, and may be repeated to pass 256 bytes.
/// The rule must parse exactly when the reference grammar accepts it, match exactly
/// as the reference glob does, and a request must be valid exactly when the
/// reference says so.
pub fn dav_match(data: &[u8]) {
    let mut input = Input::new(data);
    let selector = input.byte();
    let rest = input.rest();
    let (pattern, path) = match rest.iter().position(|&b| b == 0) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &rest[rest.len()..]),
    };
    let fold = |b: u8, wildcards: bool| {
        if is_path_char(b) || (wildcards && (b == b'*' || b == b'?')) {
            b
        } else if wildcards && b.is_multiple_of(4) {
            if b.is_multiple_of(8) {
                b'*'
            } else {
                b'?'
            }
        } else {
            PATH_ALPHABET[b as usize % PATH_ALPHABET.len()]
        }
    };
    let pattern: Vec<u8> = pattern.iter().take(240).map(|&b| fold(b, true)).collect();
    let pattern_text = std::str::from_utf8(&pattern).expect("ASCII");
    let mut path: Vec<u8> = if selector & 1 == 0 { path.to_vec() } else { path.iter().map(|&b| fold(b, false)).collect() };
    if selector & 2 != 0 {
        path = path.repeat(1 + 1100 / path.len().max(1)).into_iter().take(1030).collect();
    }
    let methods: [&[u8]; 6] = [b"GET", b"propfind", b"MkCol", b"G3T", b"", b"PUT "];
    let method = methods[usize::from(selector >> 2) % methods.len()];
    let rule_method = ["GET", "*", "PROPFIND", "put"][usize::from(selector >> 5) % 4];

    let request_ok = is_valid_request(method, &path);
    let method_ok = (1..=32).contains(&method.len()) && method.iter().all(u8::is_ascii_alphabetic);
    assert_eq!(request_ok, method_ok && reference_dav_path_ok(&path), "request {:?} {:?}", text_of(method), text_of(&path));
    assert_eq!(is_valid_path(&path), reference_dav_path_ok(&path), "path {:?}", text_of(&path));

    let text = format!("dav={rule_method} {pattern_text}");
    let rule = match parse_rule(&text) {
        Ok(Rule::Dav(rule)) => Some(rule),
        Ok(other) => panic!("{text:?} parsed as {other:?}"),
        Err(e) => {
            assert_eq!(e.code, ErrorCode::InvalidRule, "{text:?}: {e:?}");
            None
        }
    };
    let expected_rule = reference_dav_rule(&text).filter(|_| text.len() <= 256);
    assert_eq!(rule.as_ref().map(|r| r.text.to_string()), expected_rule, "rule {text:?}");
    if !may_hold_secret(&text) {
        assert_eq!(validate_rule(&text).ok(), expected_rule, "validate_rule({text:?})");
    }
    let Some(rule) = rule else { return };
    let stripped_pattern = pattern.strip_prefix(b"/").unwrap_or(&pattern);
    let stripped_path = path.strip_prefix(b"/").unwrap_or(&path);
    let method_matches = rule_method == "*" || method.eq_ignore_ascii_case(rule_method.as_bytes());
    let expected = method_matches && reference_glob(stripped_pattern, stripped_path);
    assert_eq!(rule.matches(&DavNames::new(method, &path)), expected, "rule {:?} on {:?} {:?}", rule.text, text_of(method), text_of(&path));
}

// ---- decision -------------------------------------------------------------------

const T0: i64 = 1_700_000_000_000;
const DAY: i64 = 86_400_000;

/// One key of the fixed store, and what the reference model knows of it.
struct FixtureKey {
    secret: String,
    id: String,
    user: &'static str,
    state: &'static str,
    expires_at: i64,
    rules: &'static [&'static str],
}

/// Roles by name, each with its rights.
type Roles = &'static [(&'static str, &'static [&'static str])];
/// Users: id, status, own rights, roles.
type Users = &'static [(&'static str, &'static str, &'static [&'static str], &'static [&'static str])];
/// Keys: user, state, lifetime from T0 (ms), rules.
type Keys = &'static [(&'static str, &'static str, i64, &'static [&'static str])];

struct Fixture {
    store: KeyStore,
    keys: Vec<FixtureKey>,
    roles: Roles,
    users: Users,
}

const ROLES: Roles = &[
    ("reader", &["session:get*", "data:entity???Record"]),
    ("admin", &["*:*"]),
    ("apps", &["apps/com.hornbill.core/*:*", "apps/com.hornbill.core:*"]),
];

/// (id, status, own rights, roles)
const USERS: Users = &[
    ("alice", "active", &["session:*"], &["reader"]),
    ("bob", "active", &[], &["admin"]),
    ("carol", "suspended", &[], &["admin"]),
    ("dave", "active", &["*:userLogon"], &["apps"]),
    ("erin", "archived", &["*:*"], &[]),
    ("frank", "active", &[], &[]),
];

/// (user, state, expires in ms after T0, rules); the clock then moves to T0 + 1 h.
const KEYS: Keys = &[
    ("alice", "active", DAY, &[]),
    ("alice", "active", DAY, &["session:getSessionInfo", "ip=142.250.200.0/24"]),
    ("bob", "active", 30 * DAY, &["ip=2001:db8::/32", "ip=10.0.0.1", "data:*"]),
    ("bob", "suspended", DAY, &["data:*"]),
    ("bob", "revoked", DAY, &[]),
    ("bob", "active", 60_000, &["*:*"]),
    ("carol", "active", DAY, &["*:*"]),
    ("dave", "active", DAY, &["apps/com.hornbill.core/*:*", "*:userLogon", "ip=::ffff:10.0.0.0/104", "ip=0.0.0.0/0"]),
    ("erin", "active", DAY, &[]),
    ("frank", "active", DAY, &["session:*"]),
    ("bob", "active", DAY, &["SESSION:GET*", "*:?????", "apps/*/Requests:*Request"]),
];

const NOW: i64 = T0 + 3_600_000;

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| build_fixture(ROLES, USERS, KEYS))
}

/// An in-memory store holding `roles`, `users` and `keys`, its clock at NOW.
fn build_fixture(roles: Roles, users: Users, keys: Keys) -> Fixture {
    let store = KeyStore::in_memory(Options { now: Some(T0), ..Options::default() }).expect("in-memory store");
    let strings = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    for (name, rights) in roles {
        store.put_role(name, &strings(rights), None).expect("role");
    }
    for (id, status, rights, roles) in users {
        let input = UserInput { id: id.to_string(), status: Some(status.to_string()), rights: strings(rights), roles: strings(roles) };
        store.put_user(&input, None).expect("user");
    }
    let mut fixture_keys = Vec::new();
    for &(user, state, lifetime, rules) in keys {
        let new_key = NewKey {
            user_id: user.to_string(),
            description: format!("fuzz key of {user}"),
            expires_at: Some(T0 + lifetime),
            rules: strings(rules),
            state: None,
        };
        let issued = store.create_key(&new_key, None).expect("key");
        if state != "active" {
            store.set_state(&issued.key.id, state, None).expect("state");
        }
        fixture_keys.push(FixtureKey {
            secret: issued.secret,
            id: issued.key.id.clone(),
            user,
            state,
            expires_at: issued.key.expires_at,
            rules,
        });
    }
    store.set_now(Some(NOW));
    Fixture { store, keys: fixture_keys, roles, users }
}

/// The secret a case asks with: a fixture key's (maybe with one byte edited) or raw bytes.
fn pick_secret(fixture: &Fixture, input: &mut Input) -> Vec<u8> {
    let selector = input.byte();
    let mut secret: Vec<u8> = if selector < 200 {
        fixture.keys[selector as usize % fixture.keys.len()].secret.clone().into_bytes()
    } else {
        input.bytes().to_vec()
    };
    if selector % 5 == 4 {
        let at = input.byte() as usize;
        let value = input.byte();
        if let Some(slot) = secret.get_mut(at) {
            *slot = value;
        }
    }
    secret
}

/// The caller address a case gives: none, raw bytes, or a dictionary address.
fn pick_ip<'a>(input: &mut Input<'a>) -> Option<&'a [u8]> {
    let ip_selector = input.byte();
    match ip_selector % 4 {
        0 => None,
        1 => Some(input.bytes()),
        _ => Some(IPS[ip_selector as usize % IPS.len()].as_bytes()),
    }
}

const SERVICES: &[&str] = &[
    "session",
    "data",
    "admin",
    "apps/com.hornbill.core",
    "apps/com.hornbill.core/Achievement",
    "apps/com.hornbill.servicemanager/Requests",
    "SESSION",
    "a",
    "",
];
const APIS: &[&str] = &[
    "getSessionInfo",
    "userLogon",
    "userLogoff",
    "entityAddRecord",
    "entityBrowseRecords2",
    "keysafeGetKey",
    "addHistory",
    "holdRequest",
    "GETX",
    "a*",
    "",
];
const IPS: &[&str] = &[
    "142.250.200.46",
    "142.250.201.1",
    "10.0.0.1",
    "10.0.0.2",
    "::ffff:10.0.0.1",
    "2001:db8::7",
    "2001:db9::1",
    "fe80::1%eth0",
    "10.0.0.1%eth0",
    "::1",
    "nonsense",
    "",
];

fn pick_text<'a>(input: &mut Input<'a>, dictionary: &'a [&'a str]) -> &'a [u8] {
    let selector = input.byte();
    if selector < 192 {
        dictionary[selector as usize % dictionary.len()].as_bytes()
    } else {
        input.bytes()
    }
}

/// Input: secret choice (a fixture key's secret, maybe edited, or raw bytes),
/// then service, api and ip (dictionary words or raw bytes).
pub fn decision(data: &[u8]) {
    let fixture = fixture();
    let mut input = Input::new(data);
    let secret = pick_secret(fixture, &mut input);
    let service = pick_text(&mut input, SERVICES);
    let api = pick_text(&mut input, APIS);
    let ip = pick_ip(&mut input);
    let call = Call { secret: &secret, service, api, ip };
    let verdict = fixture.store.check(call);
    let explanation = fixture.store.explain(call);
    let shown = |b: &[u8]| text_of(b).into_owned();
    let what = format!("check({:?}, {:?}, {:?}, {:?})", shown(&secret), shown(service), shown(api), ip.map(shown));
    assert_eq!(verdict.reason, explanation.reason, "check and explain disagree on {what}");
    let (expected, key, matched) = reference_decision(fixture, &secret, service, api, ip);
    assert_eq!(verdict.reason, expected, "{what}");
    assert_eq!(verdict.known_key, key.is_some(), "{what}");
    assert_eq!(explanation.key_id.as_deref(), key.map(|k| k.id.as_str()), "{what}");
    assert_eq!(explanation.user_id.as_deref(), key.map(|k| k.user), "{what}");
    if matches!(expected, Reason::Allowed | Reason::IpNotAllowed) {
        assert_eq!(explanation.matched_rule.as_deref(), matched, "{what}");
    }
}

/// Steps 1 to 6 of the decision over the fixture (`request_ok`: step 3's verdict on the request):
/// the key and its user's effective rights (own, then each role's), or the reason and key of a denial.
#[allow(clippy::type_complexity)]
fn reference_steps_1_to_6<'f>(
    fixture: &'f Fixture,
    secret: &[u8],
    request_ok: bool,
) -> Result<(&'f FixtureKey, Vec<&'static str>), (Reason, Option<&'f FixtureKey>)> {
    if !reference_well_formed(secret, "kg") {
        return Err((Reason::MalformedKey, None));
    }
    let Some(key) = fixture.keys.iter().find(|k| k.secret.as_bytes() == secret) else {
        return Err((Reason::UnknownKey, None));
    };
    let deny = |reason| Err((reason, Some(key)));
    if !request_ok {
        return deny(Reason::InvalidRequest);
    }
    match key.state {
        "suspended" => return deny(Reason::Suspended),
        "revoked" => return deny(Reason::Revoked),
        _ => {}
    }
    if NOW >= key.expires_at {
        return deny(Reason::Expired);
    }
    let Some(&(_, status, rights, roles)) = fixture.users.iter().find(|u| u.0 == key.user) else {
        return deny(Reason::UserInactive);
    };
    if status != "active" {
        return deny(Reason::UserInactive);
    }
    let role_rights = roles.iter().filter_map(|r| fixture.roles.iter().find(|(n, _)| n == r)).flat_map(|(_, rights)| rights.iter());
    Ok((key, rights.iter().chain(role_rights).copied().collect()))
}

/// Step 9: the key has no IP rules, or `ip` is given and lies in one of them.
fn reference_ip_allowed(key: &FixtureKey, ip: Option<&[u8]>) -> bool {
    let ip_rules: Vec<(IpAddr, u32)> = key.rules.iter().filter_map(|r| r.strip_prefix("ip=")).filter_map(reference_net).collect();
    let caller = ip.and_then(reference_caller_ip);
    ip_rules.is_empty() || caller.is_some_and(|a| ip_rules.iter().any(|&(n, p)| reference_contains(n, p, a)))
}

/// The decision's nine documented steps over the fixture, with the reference glob and IP pieces.
fn reference_decision<'f>(
    fixture: &'f Fixture,
    secret: &[u8],
    service: &[u8],
    api: &[u8],
    ip: Option<&[u8]>,
) -> (Reason, Option<&'f FixtureKey>, Option<&'static str>) {
    let (key, rights) = match reference_steps_1_to_6(fixture, secret, is_valid_name(service) && is_valid_name(api)) {
        Ok(found) => found,
        Err((reason, key)) => return (reason, key, None),
    };
    let deny = |reason| (reason, Some(key), None);
    let api_rule_matches = |rule: &str| {
        rule.split_once(':')
            .is_some_and(|(s, a)| !rule.starts_with("ip=") && reference_glob(s.as_bytes(), service) && reference_glob(a.as_bytes(), api))
    };
    if !rights.iter().any(|r| api_rule_matches(r)) {
        return deny(Reason::UserLacksRight);
    }
    let api_rules: Vec<&'static str> = key.rules.iter().copied().filter(|r| !r.starts_with("ip=")).collect();
    let matched = api_rules.iter().copied().find(|r| api_rule_matches(r));
    if !api_rules.is_empty() && matched.is_none() {
        return deny(Reason::NoMatchingRule);
    }
    let ip_ok = reference_ip_allowed(key, ip);
    (if ip_ok { Reason::Allowed } else { Reason::IpNotAllowed }, Some(key), matched)
}

// ---- decision_dav ---------------------------------------------------------------

/// Roles of the WebDAV fixture: WebDAV and API rights side by side.
const DAV_ROLES: Roles = &[
    ("readers", &["dav=GET docs/*", "dav=PROPFIND docs/*", "session:*"]),
    ("writers", &["dav=* docs/reports/*", "dav=PUT ~*/upload/?*"]),
    ("api", &["*:*"]),
];

/// (id, status, own rights, roles) of the WebDAV fixture.
const DAV_USERS: Users = &[
    ("alice", "active", &["dav=* session/*"], &["readers"]),
    ("bob", "active", &["dav=* *"], &[]),
    ("carol", "suspended", &["dav=* *"], &[]),
    ("dave", "active", &[], &["api"]),
    ("erin", "active", &["dav=MKCOL /docs/", "dav=mkcol docs/*/"], &["writers", "readers"]),
];

/// (user, state, expires in ms after T0, rules) of the WebDAV fixture; the clock then moves to NOW.
const DAV_KEYS: Keys = &[
    ("alice", "active", DAY, &[]),
    ("alice", "active", DAY, &["dav=GET docs/a?c", "session:*", "dav=get /docs/*", "ip=10.0.0.0/8"]),
    ("bob", "active", DAY, &["*:*"]),
    ("bob", "active", DAY, &["dav=PROPFIND *", "dav=* docs/*.txt", "dav=GET ~u/*"]),
    ("bob", "suspended", DAY, &[]),
    ("bob", "revoked", DAY, &["dav=* *"]),
    ("bob", "active", 60_000, &[]),
    ("carol", "active", DAY, &[]),
    ("dave", "active", DAY, &["dav=* *"]),
    ("erin", "active", DAY, &["dav=* docs/*", "ip=2001:db8::/32", "ip=::ffff:10.0.0.0/104"]),
    ("bob", "active", DAY, &["DAV=Put DOCS/*/X", "dav=* */*/*", "session:get*"]),
];

fn dav_fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| build_fixture(DAV_ROLES, DAV_USERS, DAV_KEYS))
}

const DAV_METHODS: &[&str] = &["GET", "get", "PROPFIND", "PropFind", "PUT", "MKCOL", "mkcol", "COPY", "DELETE", "G3T", "", "*", "GET "];
const DAV_PATHS: &[&str] = &[
    "docs/a.txt",
    "/docs/abc",
    "docs/",
    "docs",
    "DOCS/reports/q1/x.pdf",
    "docs/reports/",
    "docs/../secret",
    "docs/./a",
    "docs//a",
    "/",
    "",
    "session/x",
    "~u/x",
    "~me/upload/f",
    "~me/upload/",
    "a/b/c",
    "docs/a/x",
    "docs/a%2Fb",
    "docs/*",
    "caf\u{e9}",
];

/// The reading of a normalised WebDAV rule the fixture holds: (method, or None for `*`; path pattern).
fn reference_dav_parts(rule: &str) -> Option<(Option<&str>, &str)> {
    let body = rule.get(..4).filter(|tag| tag.eq_ignore_ascii_case("dav=")).and_then(|_| rule.get(4..))?;
    let (method, path) = body.split_once(' ')?;
    Some(((method != "*").then_some(method), path.strip_prefix('/').unwrap_or(path)))
}

/// Input: secret choice (a fixture key's secret, maybe edited, or raw bytes), then method,
/// path and ip (dictionary words or raw bytes).
pub fn decision_dav(data: &[u8]) {
    let fixture = dav_fixture();
    let mut input = Input::new(data);
    let secret = pick_secret(fixture, &mut input);
    let method = pick_text(&mut input, DAV_METHODS);
    let path_selector = input.byte();
    let path: Vec<u8> = match path_selector % 8 {
        // Long paths around the 1,024 limit.
        7 => {
            let unit = DAV_PATHS[path_selector as usize % DAV_PATHS.len()].as_bytes();
            let lead = if path_selector & 16 != 0 { &b"/"[..] } else { b"" };
            let len = 1020 + usize::from(input.byte() % 8);
            lead.iter().copied().chain(unit.iter().copied().chain(std::iter::repeat(b'a')).take(len)).collect()
        }
        6 => input.bytes().to_vec(),
        _ => DAV_PATHS[path_selector as usize % DAV_PATHS.len()].as_bytes().to_vec(),
    };
    let ip = pick_ip(&mut input);
    let call = DavCall { secret: &secret, method, path: &path, ip };
    let verdict = fixture.store.check_dav(call);
    let explanation = fixture.store.explain_dav(call);
    let shown = |b: &[u8]| text_of(b).into_owned();
    let what = format!("check_dav({:?}, {:?}, {:?}, {:?})", shown(&secret), shown(method), shown(&path), ip.map(shown));
    assert_eq!(verdict.reason, explanation.reason, "check_dav and explain_dav disagree on {what}");
    let (expected, key, matched) = reference_dav_decision(fixture, &secret, method, &path, ip);
    assert_eq!(verdict.reason, expected, "{what}");
    assert_eq!(verdict.known_key, key.is_some(), "{what}");
    assert_eq!(explanation.key_id.as_deref(), key.map(|k| k.id.as_str()), "{what}");
    assert_eq!(explanation.user_id.as_deref(), key.map(|k| k.user), "{what}");
    if matches!(expected, Reason::Allowed | Reason::IpNotAllowed) {
        assert_eq!(explanation.matched_rule, matched, "{what}");
    }
    if let Some(key) = key {
        let by_id = fixture.store.explain_key_dav(&key.id, call);
        assert_eq!((by_id.reason, by_id.matched_rule), (explanation.reason, explanation.matched_rule), "explain_key_dav on {what}");
    }
}

/// The decision's nine documented steps for a WebDAV request over the WebDAV fixture.
fn reference_dav_decision<'f>(
    fixture: &'f Fixture,
    secret: &[u8],
    method: &[u8],
    path: &[u8],
    ip: Option<&[u8]>,
) -> (Reason, Option<&'f FixtureKey>, Option<String>) {
    let method_ok = (1..=32).contains(&method.len()) && method.iter().all(u8::is_ascii_alphabetic);
    let (key, rights) = match reference_steps_1_to_6(fixture, secret, method_ok && reference_dav_path_ok(path)) {
        Ok(found) => found,
        Err((reason, key)) => return (reason, key, None),
    };
    let deny = |reason| (reason, Some(key), None);
    let stripped = path.strip_prefix(b"/").unwrap_or(path);
    let dav_rule_matches = |rule: &str| {
        reference_dav_parts(rule).is_some_and(|(m, p)| {
            m.is_none_or(|m| m.as_bytes().eq_ignore_ascii_case(method))
                && reference_glob(p.to_ascii_lowercase().as_bytes(), &stripped.to_ascii_lowercase())
        })
    };
    if !rights.iter().any(|r| dav_rule_matches(r)) {
        return deny(Reason::UserLacksRight);
    }
    let dav_rules: Vec<&'static str> = key.rules.iter().copied().filter(|r| reference_dav_parts(r).is_some()).collect();
    let matched = dav_rules.iter().copied().find(|r| dav_rule_matches(r));
    if !dav_rules.is_empty() && matched.is_none() {
        return deny(Reason::NoMatchingRule);
    }
    let ip_ok = reference_ip_allowed(key, ip);
    // What explain reports: the rule as stored (normalised).
    let shown = matched.and_then(reference_dav_rule);
    (if ip_ok { Reason::Allowed } else { Reason::IpNotAllowed }, Some(key), shown)
}

// ---- store_load -----------------------------------------------------------------

/// Texts that mean something to the loader, to combine with arbitrary ones.
const WORDS: &[&str] = &[
    "session:get*",
    "apps/com.hornbill.core/*:*",
    "ip=142.250.200.0/24",
    "ip=2001:db8::/32",
    "*:*",
    "session:get*\ndata:*",
    "éé",
    "a€:b",
    "ip=é",
    "  éé",
    "Grö:x",
    "😀:x",
    "\n",
    "",
    "active",
    "suspended",
    "revoked",
    "archived",
    "Active",
    "alice",
    "reader",
    "admin",
    "kg",
    "acme",
    "KG",
    "730",
    "1e9",
    "-1",
    "NaN",
    "user",
    "role",
    "key",
    "put",
    "delete",
    "ab12",
    "abc",
    "key_0000000000000000000000",
    "0",
    "00",
];

struct Template {
    dir: tempfile::TempDir,
    bytes: Vec<u8>,
    /// The secrets of its keys: alice's and bob's, each rotated (old key in its 60 s overlap, then the new one).
    secrets: Vec<String>,
}

/// A real store, written by keygate and closed, as bytes to start each case from.
fn template() -> &'static Template {
    static TEMPLATE: OnceLock<Template> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let shm = std::path::Path::new("/dev/shm");
        let dir = if shm.is_dir() { tempfile::tempdir_in(shm) } else { tempfile::tempdir() }.expect("a temp dir");
        let path = dir.path().join("template.db");
        let path_text = path.to_str().expect("a UTF-8 temp path");
        let store = KeyStore::open(path_text, Options { now: Some(T0), ..Options::default() }).expect("a new store");
        let strings = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        store.put_role("reader", &strings(&["session:get*", "data:entity???Record"]), Some("fuzz")).expect("role");
        store.put_role("apps", &strings(&["apps/com.hornbill.core/*:*"]), None).expect("role");
        for (id, roles) in [("alice", &["reader"][..]), ("bob", &["reader", "apps"][..])] {
            let input = UserInput { id: id.into(), status: None, rights: strings(&["session:*"]), roles: strings(roles) };
            store.put_user(&input, Some("fuzz")).expect("user");
        }
        let mut secrets = Vec::new();
        for (user, rules) in [("alice", &["session:getSessionInfo", "ip=10.0.0.0/8"][..]), ("bob", &[][..])] {
            let new_key = NewKey {
                user_id: user.into(),
                description: "template key".into(),
                expires_at: Some(T0 + DAY),
                rules: strings(rules),
                state: None,
            };
            let issued = store.create_key(&new_key, None).expect("key");
            let rotated = store.rotate_key(&issued.key.id, 60.0, None).expect("rotation");
            secrets.extend([issued.secret, rotated.secret]);
        }
        store.close().expect("close");
        drop(store);
        {
            let conn = rusqlite::Connection::open(&path).expect("reopen");
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).expect("checkpoint");
        }
        let bytes = std::fs::read(&path).expect("read the template");
        Template { dir, bytes, secrets }
    })
}

/// `name` in the template's directory: a fresh copy of the template (no WAL or journal beside it).
fn fresh_copy(template: &Template, name: &str) -> std::path::PathBuf {
    let path = template.dir.path().join(name);
    remove_store_files(&path);
    std::fs::write(&path, &template.bytes).expect("write the case file");
    path
}

fn remove_store_files(path: &std::path::Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut name = path.to_path_buf().into_os_string();
        name.push(suffix);
        let _ = std::fs::remove_file(name);
    }
}

fn sql_value(input: &mut Input) -> (rusqlite::types::Value, bool) {
    use rusqlite::types::Value;
    let kind = input.byte() % 9;
    let value = match kind {
        0 => Value::Null,
        1 => Value::Integer(input.u64() as i64),
        2 => Value::Real(f64::from_bits(input.u64())),
        3 => Value::Text(text_of(input.bytes()).into_owned()),
        4 => Value::Blob(input.bytes().to_vec()),
        5 | 6 => Value::Text(input.choose(WORDS).to_string()),
        7 => Value::Blob(input.bytes().to_vec()), // bound as TEXT: possibly invalid UTF-8 in a text column
        _ => Value::Integer(*input.choose(&[0i64, 1, -1, 2, i64::MIN, i64::MAX, T0, T0 + DAY, 16, 32])),
    };
    (value, kind == 7)
}

fn placeholder(as_text: bool, n: usize) -> String {
    if as_text {
        format!("CAST(?{n} AS TEXT)")
    } else {
        format!("?{n}")
    }
}

/// Applies fuzz-chosen edits to the store file; errors (constraints, a dropped
/// table) just skip the edit. Returns byte flips to apply after the connection closes.
fn edit_store(conn: &rusqlite::Connection, input: &mut Input) -> Vec<(usize, u8)> {
    let mut flips = Vec::new();
    let mut edits = 0;
    while !input.is_empty() && edits < 16 {
        edits += 1;
        let (table, columns) = *input.choose(&TABLES);
        match input.byte() % 8 {
            kind @ 0..=5 => edit_row(conn, input, kind, table, columns),
            6 => edit_schema(conn, input, table),
            _ => {
                let at = (input.u64() % 65_536) as usize;
                let xor = input.byte().max(1);
                flips.push((at, xor));
            }
        }
    }
    flips
}

/// One row edit of `table` (`kind` % 6): a column of an existing row set to a value of any
/// type (0–2), a copy of a row with one column changed (3), a new row of arbitrary
/// values (4), a row deleted (5). An edit the file refuses (a constraint) is skipped.
fn edit_row(conn: &rusqlite::Connection, input: &mut Input, kind: u8, table: &str, columns: &[&str]) {
    match kind % 6 {
        0..=2 => {
            let column = *input.choose(columns);
            set_column(conn, input, table, column, &format!("SELECT rowid FROM {table}"));
        }
        3 => {
            // A copy of an existing row with one column changed (keeps the other columns plausible).
            let column_index = input.byte() as usize % columns.len();
            let (value, as_text) = sql_value(input);
            let select: Vec<String> =
                columns.iter().enumerate().map(|(i, c)| if i == column_index { placeholder(as_text, 1) } else { c.to_string() }).collect();
            let sql = format!("INSERT INTO {table} ({}) SELECT {} FROM {table} LIMIT 1", columns.join(", "), select.join(", "));
            let _ = conn.execute(&sql, [value]);
        }
        4 => {
            let mut values = Vec::new();
            let mut slots = Vec::new();
            for (i, _) in columns.iter().enumerate() {
                let (value, as_text) = sql_value(input);
                values.push(value);
                slots.push(placeholder(as_text, i + 1));
            }
            let sql = format!("INSERT OR REPLACE INTO {table} ({}) VALUES ({})", columns.join(", "), slots.join(", "));
            let _ = conn.execute(&sql, rusqlite::params_from_iter(values));
        }
        _ => {
            let offset = input.byte() % 4;
            let _ = conn.execute(&format!("DELETE FROM {table} WHERE rowid IN (SELECT rowid FROM {table} LIMIT 1 OFFSET {offset})"), []);
        }
    }
}

/// Sets `column` of one row of `table` to a value of any type: the row `rowids` (a query of
/// rowids) gives at a fuzz-chosen offset (0–3).
fn set_column(conn: &rusqlite::Connection, input: &mut Input, table: &str, column: &str, rowids: &str) {
    let offset = input.byte() % 4;
    let (value, as_text) = sql_value(input);
    let sql = format!("UPDATE {table} SET {column} = {} WHERE rowid IN ({rowids} LIMIT 1 OFFSET {offset})", placeholder(as_text, 1));
    let _ = conn.execute(&sql, [value]);
}

/// A schema edit: `table` dropped or renamed, the schema version changed, a foreign table added.
fn edit_schema(conn: &rusqlite::Connection, input: &mut Input, table: &str) {
    match input.byte() % 4 {
        0 => {
            let _ = conn.execute_batch(&format!("DROP TABLE {table}"));
        }
        1 => {
            let version = *input.choose(&[0i64, 1, 2, -1, 1000]);
            let _ = conn.execute_batch(&format!("PRAGMA user_version = {version}"));
        }
        2 => {
            let _ = conn.execute_batch(&format!("ALTER TABLE {table} RENAME TO {table}_old"));
        }
        _ => {
            let _ = conn.execute_batch(&format!("CREATE TABLE IF NOT EXISTS extra_{table} (x)"));
        }
    }
}

/// Input: a list of edits to a real store file (row updates with values of any
/// type, copied and new rows, deletions, dropped tables, schema version, byte
/// flips); then `KeyStore::open` must answer Ok or `STORE_CORRUPT`, never panic,
/// and a refused file must be left byte for byte.
pub fn store_load(data: &[u8]) {
    let template = template();
    let path = fresh_copy(template, "case.db");
    let mut input = Input::new(data);
    let flips = {
        let conn = rusqlite::Connection::open(&path).expect("open the case file");
        edit_store(&conn, &mut input)
    };
    if !flips.is_empty() {
        let mut bytes = std::fs::read(&path).expect("read the case file");
        for (at, xor) in flips {
            let len = bytes.len();
            if len > 0 {
                bytes[at % len] ^= xor;
            }
        }
        std::fs::write(&path, &bytes).expect("write the case file");
    }
    let before = std::fs::read(&path).expect("read the case file");
    let path_text = path.to_str().expect("a UTF-8 temp path");
    match KeyStore::open(path_text, Options::default()) {
        Ok(store) => {
            // A store that opened must serve every read without panicking.
            let _ = store.list_users();
            let _ = store.list_roles();
            let keys = store.list_keys(&Default::default());
            if let Ok(keys) = &keys {
                for key in keys.iter().take(4) {
                    let _ = store.get_key(&key.id);
                }
            }
            let _ = store.audit(&Default::default());
            let _ = store.verify_audit();
            let call = Call { secret: b"kg_x", service: b"session", api: b"getSessionInfo", ip: Some(b"10.0.0.1") };
            let _ = store.check(call);
            let _ = store.close();
        }
        Err(e) => {
            // KEYGATE_FUZZ_STORE_IO_OK=1 lets a tree where damaged rows still give
            // STORE_IO (issue 10, finding 4) be fuzzed for panics.
            let io_ok = e.code == ErrorCode::StoreIo && std::env::var_os("KEYGATE_FUZZ_STORE_IO_OK").is_some();
            assert!(io_ok || e.code == ErrorCode::StoreCorrupt, "a damaged store must be STORE_CORRUPT, got {e}");
            let after = std::fs::read(&path).expect("read the case file");
            assert!(before == after, "a refused store file was modified ({e})");
        }
    }
}

// ---- store_catch_up -------------------------------------------------------------

/// The clock of store_catch_up's stores: inside the 60 s overlap of the template's
/// rotations, so that all four of its keys are active.
const CATCH_UP_NOW: i64 = T0 + 30_000;

fn catch_up_options() -> Options {
    let silent: keygate_core::OnError = std::sync::Arc::new(|_: &keygate_core::Incident| {});
    // No purge at open: the reference store must keep the keys the store under test keeps.
    Options { now: Some(CATCH_UP_NOW), purge_expired_after_days: Some(1e6), on_error: Some(silent), ..Options::default() }
}

/// The tables of entities, the kind their change rows name, and their columns (the id first).
fn entity_tables() -> [(&'static str, &'static str, &'static [&'static str]); 3] {
    let columns = |name: &str| TABLES.iter().find(|(t, _)| *t == name).map(|(_, c)| *c).expect("a table of the schema");
    [("roles", "role", columns("roles")), ("users", "user", columns("users")), ("keys", "key", columns("keys"))]
}

/// One row of an entity table as the file holds it: the kind, the id's SQL type and bytes,
/// and every column as `type:hex` (so rows of any type and encoding compare exactly).
#[derive(PartialEq, Clone)]
struct EntityRow {
    kind: &'static str,
    id_type: String,
    id: Vec<u8>,
    row: String,
}

/// Every row of the entity tables (none of a table that cannot be read).
fn entity_rows(conn: &rusqlite::Connection) -> Vec<EntityRow> {
    let mut out = Vec::new();
    for (table, kind, columns) in entity_tables() {
        let shown: Vec<String> = columns.iter().map(|c| format!("typeof({c}) || ':' || hex({c})")).collect();
        let id = columns[0];
        let sql = format!("SELECT typeof({id}), CAST({id} AS BLOB), {} FROM {table}", shown.join(" || ',' || "));
        let Ok(mut stmt) = conn.prepare(&sql) else { continue };
        let rows = stmt.query_map([], |r| {
            Ok(EntityRow { kind, id_type: r.get(0)?, id: r.get::<_, Option<Vec<u8>>>(1)?.unwrap_or_default(), row: r.get(2)? })
        });
        if let Ok(rows) = rows {
            out.extend(rows.filter_map(|r| r.ok()));
        }
    }
    out
}

/// The text a change row names an entity by, as keygate writes it; an id keygate could
/// not have written is named by its raw bytes (a change row of the wrong type).
fn change_id_of(kind: &str, id_type: &str, id: &[u8]) -> rusqlite::types::Value {
    use rusqlite::types::Value;
    match (kind, id_type, <[u8; 16]>::try_from(id)) {
        ("key", "blob", Ok(bytes)) => Value::Text(keygate_core::KeyId::from_bytes(bytes).to_string()),
        (_, "text", _) => match std::str::from_utf8(id) {
            Ok(text) => Value::Text(text.to_string()),
            Err(_) => Value::Blob(id.to_vec()),
        },
        _ => Value::Blob(id.to_vec()),
    }
}

/// Whether the change row id `named` names the entity (`kind`, `id_type`, `id`) as the
/// catch-up looks it up: a key by the 16 bytes its id text decodes to, others by text.
fn names(kind: &str, id_type: &str, id: &[u8], named: &str) -> bool {
    match kind {
        "key" => id_type == "blob" && named.parse::<keygate_core::KeyId>().is_ok_and(|k| k.as_bytes()[..] == *id),
        _ => id_type == "text" && named.as_bytes() == id,
    }
}

const CHANGE_KINDS: &[&str] = &["user", "role", "key", "user", "role", "key", "User", "keys", "audit", ""];
const CHANGE_OPS: &[&str] = &["put", "delete", "put", "delete", "Put", "remove", ""];

/// A change number: `None` for SQLite's next one, else around the store's place `s0`,
/// or far from it (negative, huge, the last ones an open accepts or SQLite can give).
fn log_seq(input: &mut Input, s0: i64) -> Option<i64> {
    match input.byte() % 8 {
        0 | 7 => None,
        1 => Some(s0),
        2 => Some(s0 - 1 - i64::from(input.byte() % 4)),
        3 => Some(s0 + 1 + i64::from(input.byte() % 4)),
        4 => Some(*input.choose(&[0, -1, i64::MAX, i64::MAX - (1 << 32), i64::MAX - (1 << 32) + 1, 1 << 40, 1023, 100_001])),
        5 => Some(input.u64() as i64),
        _ => Some(s0 + 2),
    }
}

/// An id for a change row: an entity's own (as keygate names it), a word, or any value.
fn pick_change_id(conn: &rusqlite::Connection, input: &mut Input) -> rusqlite::types::Value {
    let rows = entity_rows(conn);
    match input.byte() % 4 {
        0 | 1 if !rows.is_empty() => {
            let row = &rows[input.byte() as usize % rows.len()];
            change_id_of(row.kind, &row.id_type, &row.id)
        }
        2 => rusqlite::types::Value::Text(input.choose(WORDS).to_string()),
        _ => sql_value(input).0,
    }
}

/// One hostile edit of the change log: a change row of any kind, id, op and number;
/// a column of one set to any value; rows deleted (the log cut before a place, or one
/// row); the number SQLite gives next moved.
fn edit_log(conn: &rusqlite::Connection, input: &mut Input, s0: i64) {
    use rusqlite::types::Value;
    let seq = log_seq(input, s0);
    match input.byte() % 6 {
        0 | 1 => {
            let kind = *input.choose(CHANGE_KINDS);
            let op = *input.choose(CHANGE_OPS);
            let id = pick_change_id(conn, input);
            let seq = seq.map_or(Value::Null, Value::Integer);
            let _ = conn.execute(
                "INSERT OR REPLACE INTO changes (seq, kind, id, op) VALUES (?1, ?2, ?3, ?4)",
                rusqlite::params![seq, kind, id, op],
            );
        }
        2 => {
            let column = *input.choose(&["kind", "id", "op", "seq"]);
            set_column(conn, input, "changes", column, "SELECT rowid FROM changes ORDER BY seq DESC");
        }
        3 => {
            let _ = conn.execute("DELETE FROM changes WHERE seq > ?1", [seq.unwrap_or(s0 - 1)]);
        }
        4 => {
            let cmp = *input.choose(&["=", "<="]);
            let _ = conn.execute(&format!("DELETE FROM changes WHERE seq {cmp} ?1"), [seq.unwrap_or(s0)]);
        }
        _ => {
            let _ = conn.execute("UPDATE sqlite_sequence SET seq = ?1 WHERE name = 'changes'", [seq.unwrap_or(i64::MAX)]);
        }
    }
}

/// The change log as the store under test reads it from its place `s0`.
struct LogView {
    /// The catch-up reads everything afresh (the log ends before `s0`, begins after it,
    /// or holds a change row it cannot read): what it then holds is the file's.
    reload: bool,
    /// The changes after `s0`, in order: (kind, id, op).
    batch: Vec<(String, String, String)>,
}

fn log_view(conn: &rusqlite::Connection, s0: i64) -> Option<LogView> {
    let (latest, oldest): (i64, i64) =
        conn.query_row("SELECT coalesce(max(seq), 0), coalesce(min(seq), 0) FROM changes", [], |r| Ok((r.get(0)?, r.get(1)?))).ok()?;
    let mut stmt = conn.prepare("SELECT kind, id, op FROM changes WHERE seq > ?1 ORDER BY seq").ok()?;
    let rows: Vec<(Option<String>, Option<String>, Option<String>)> =
        stmt.query_map([s0], |r| Ok((r.get(0).ok(), r.get(1).ok(), r.get(2).ok()))).ok()?.collect::<Result<_, _>>().ok()?;
    let known = |kind: &str, op: &str| matches!(kind, "user" | "role" | "key") && matches!(op, "put" | "delete");
    let mut reload = latest < s0 || oldest > s0.saturating_add(1);
    let mut batch = Vec::new();
    for row in rows {
        match row {
            (Some(kind), Some(id), Some(op)) if known(&kind, &op) => batch.push((kind, id, op)),
            _ => reload = true,
        }
    }
    Some(LogView { reload, batch })
}

/// A store over a copy of the file `conn` is open on, as a fresh process would load it:
/// without the change log (which loading never reads), without the keys whose user is gone
/// (the store under test forgets them with their user), and with `deletes` applied (the
/// entities the log last says were deleted).
fn reference_store(conn: &rusqlite::Connection, template: &Template, deletes: &[(String, String)]) -> keygate_core::Result<KeyStore> {
    let path = template.dir.path().join("reference.db");
    remove_store_files(&path);
    conn.backup(rusqlite::MAIN_DB, &path, None).expect("copy the case file");
    {
        let copy = rusqlite::Connection::open(&path).expect("open the copy");
        let _ = copy.execute_batch("DELETE FROM changes; DELETE FROM sqlite_sequence WHERE name = 'changes'");
        for (kind, id) in deletes {
            let _ = match kind.as_str() {
                "user" => copy
                    .execute("DELETE FROM keys WHERE user_id = ?1", [id])
                    .and_then(|_| copy.execute("DELETE FROM users WHERE id = ?1", [id])),
                "role" => copy.execute("DELETE FROM roles WHERE name = ?1", [id]),
                _ => match id.parse::<keygate_core::KeyId>() {
                    Ok(key) => copy.execute("DELETE FROM keys WHERE id = ?1", [&key.as_bytes()[..]]),
                    Err(_) => Ok(0),
                },
            };
        }
        let _ = copy.execute("DELETE FROM keys WHERE user_id NOT IN (SELECT id FROM users)", []);
    }
    KeyStore::open(path.to_str().expect("a UTF-8 temp path"), catch_up_options())
}

/// A well-formed secret of the template's prefix that no key has.
fn unknown_secret() -> Vec<u8> {
    let mut text = b"kg_".to_vec();
    text.extend([b'A'; 43]);
    let crc = crc32fast::hash(&text);
    text.extend_from_slice(&base62_6(crc as u64));
    text
}

/// A call to check: (service, api, caller address).
type CallNames = (&'static [u8], &'static [u8], Option<&'static [u8]>);

const CATCH_UP_CALLS: [CallNames; 4] = [
    (b"session", b"getSessionInfo", Some(b"10.0.0.1")),
    (b"data", b"entityAddRecord", None),
    (b"apps/com.hornbill.core/Achievement", b"addHistory", Some(b"10.1.2.3")),
    (b"session", b"getSessionInfo", Some(b"192.168.0.1")),
];

/// Input: a count (0–12), then hostile edits another process commits (in one transaction) to the file a store
/// has open — rows of roles, users and keys of any type and value, change rows of any
/// kind, id, op and number, the log cut, the schema changed — then, for each entity whose
/// row it changed, how it logs that (rightly, with the wrong op, not at all, or below the
/// store's place). The store then catches up (an admin write), answers checks with the
/// template's secrets and an unknown one, serves reads, and closes. Nothing may panic;
/// admin errors are STORE_CORRUPT, STORE_IO or STORE_LOCKED. When every changed row is
/// named by a change the store reads (or it reads everything afresh), a check it answers
/// `allowed` must be allowed by a fresh store loaded from the file (`reference_store`);
/// and it answers nothing but `store_unavailable` when no such store can be loaded.
pub fn store_catch_up(data: &[u8]) {
    let template = template();
    let path = fresh_copy(template, "catch_up.db");
    let path_text = path.to_str().expect("a UTF-8 temp path");
    let store = KeyStore::open(path_text, catch_up_options()).expect("the template opens");
    let conn = rusqlite::Connection::open(&path).expect("open the case file");
    conn.busy_timeout(std::time::Duration::from_secs(10)).expect("a busy timeout");
    let s0: i64 = conn.query_row("SELECT max(seq) FROM changes", [], |r| r.get(0)).expect("the template's last change");
    let before = entity_rows(&conn);

    // Another process: one transaction, so the store sees all of it or none.
    let mut input = Input::new(data);
    let mut schema_edited = false;
    conn.execute_batch("BEGIN IMMEDIATE").expect("begin");
    for _ in 0..input.byte() % 13 {
        match input.byte() % 16 {
            0..=8 => {
                let (table, _, columns) = *input.choose(&entity_tables());
                let kind = input.byte();
                edit_row(&conn, &mut input, kind, table, columns);
            }
            9..=14 => edit_log(&conn, &mut input, s0),
            _ => {
                schema_edited = true;
                let (table, _) = *input.choose(&TABLES);
                edit_schema(&conn, &mut input, table);
            }
        }
    }
    // Its log of the rows it changed (an exhausted input logs them rightly).
    let after = entity_rows(&conn);
    let mut changed: Vec<(&'static str, String, Vec<u8>)> = Vec::new();
    for row in before.iter().filter(|r| !after.contains(r)).chain(after.iter().filter(|r| !before.contains(r))) {
        let entity = (row.kind, row.id_type.clone(), row.id.clone());
        if !changed.contains(&entity) {
            changed.push(entity);
        }
    }
    for (kind, id_type, id) in &changed {
        let present = after.iter().any(|r| r.kind == *kind && r.id_type == *id_type && r.id == *id);
        let choice = input.byte() % 8;
        let op = match choice {
            4 => "put",
            5 => "delete",
            6 => continue,
            _ if present => "put",
            _ => "delete",
        };
        let seq = if choice == 7 { rusqlite::types::Value::Integer(s0) } else { rusqlite::types::Value::Null };
        let _ = conn.execute(
            "INSERT OR REPLACE INTO changes (seq, kind, id, op) VALUES (?1, ?2, ?3, ?4)",
            rusqlite::params![seq, kind, change_id_of(kind, id_type, id), op],
        );
    }
    if conn.execute_batch("COMMIT").is_err() {
        let _ = conn.execute_batch("ROLLBACK");
    }

    // What the store can know: every changed row named by a change it reads, or all read afresh.
    let after = entity_rows(&conn);
    let log = log_view(&conn, s0);
    let honest = !schema_edited
        && log.as_ref().is_some_and(|log| {
            log.reload
                || before
                    .iter()
                    .filter(|r| !after.contains(r))
                    .chain(after.iter().filter(|r| !before.contains(r)))
                    .all(|row| log.batch.iter().any(|(kind, id, _)| kind == row.kind && names(row.kind, &row.id_type, &row.id, id)))
        });

    // This process catches up: an admin write reads the changes first (whether or not the
    // store's own thread has already).
    let input_user = UserInput { id: "catch-up".into(), status: None, rights: vec!["session:*".into()], roles: Vec::new() };
    if let Err(e) = store.put_user(&input_user, Some("fuzz")) {
        assert!(matches!(e.code, ErrorCode::StoreCorrupt | ErrorCode::StoreIo | ErrorCode::StoreLocked), "put_user after catch-up: {e}");
    }
    let mut secrets: Vec<Vec<u8>> = template.secrets.iter().map(|s| s.clone().into_bytes()).collect();
    secrets.push(unknown_secret());
    let mut verdicts = Vec::new();
    for secret in &secrets {
        for (service, api, ip) in CATCH_UP_CALLS {
            let call = Call { secret, service, api, ip };
            verdicts.push((call, store.check(call).reason));
        }
    }
    let _ = store.list_users();
    let _ = store.list_roles();
    let _ = store.get_user("alice");
    let _ = store.effective_rights("bob");
    if let Ok(keys) = store.list_keys(&Default::default()) {
        for key in keys.iter().take(6) {
            let _ = store.get_key(&key.id);
        }
    }
    let current = store.is_current();

    if honest {
        let log = log.expect("read above");
        // The entities the log last says were deleted.
        let mut last: Vec<(String, String, String)> = Vec::new();
        for (kind, id, op) in log.batch {
            last.retain(|(k, i, _)| !(*k == kind && *i == id));
            last.push((kind, id, op));
        }
        let deletes: Vec<(String, String)> = last.into_iter().filter(|(_, _, op)| op == "delete").map(|(k, i, _)| (k, i)).collect();
        let reference = reference_store(&conn, template, &[]).or_else(|_| reference_store(&conn, template, &deletes));
        for (call, reason) in &verdicts {
            if *reason == Reason::StoreUnavailable {
                continue;
            }
            let what =
                format!("check({:?}, {:?}:{:?}) answered {reason:?}", text_of(call.secret), text_of(call.service), text_of(call.api));
            let reference = match &reference {
                Ok(reference) => reference,
                Err(e) => panic!("{what} (current: {current}), but no store can be loaded from the file it follows: {e}"),
            };
            if *reason == Reason::Allowed {
                let expected = reference.check(*call).reason;
                assert_eq!(expected, Reason::Allowed, "{what}, but a store loaded from the file answers {expected:?}");
            }
        }
        if let Ok(reference) = reference {
            let _ = reference.close();
        }
    }
    let _ = store.close();
}

// ---- pg_changes -----------------------------------------------------------------

// The PostgreSQL store's change log: each `keygate_changes` row holds, as JSON text, the
// changes of one admin call, which every other process decodes and applies when it catches
// up. Anyone with write access to the database can put any text there.

/// A list of texts, owned.
fn owned(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Rights long enough (over 16) that the registry indexes the list.
fn wide_rules() -> Vec<String> {
    (0..18).map(|i| format!("svc{i}:get*")).collect()
}

/// A key of the template world: id, sequence number and digest from `n`; keys 2 and 3
/// (4 and 5, …) share a hint.
fn pg_key(n: u8, user: &str, state: KeyState, rules: Vec<String>, last_used_at: Option<i64>) -> KeyRecord {
    KeyRecord {
        id: KeyId::from_bytes([n; 16]),
        seq: u64::from(n),
        user_id: user.into(),
        description: format!("template key {n}"),
        state,
        expires_at: T0 + DAY,
        created_at: T0,
        updated_at: T0 + i64::from(n),
        last_used_at,
        hint: [b'h', b'0' + n / 2 % 10, b'Z', b'9'],
        digest: [n; 32],
        rules,
    }
}

fn pg_user(id: &str, status: UserStatus, rights: Vec<String>, roles: &[&str]) -> Change {
    Change::PutUser(UserRecord { id: id.into(), status, rights, roles: owned(roles) })
}

fn pg_role(name: &str, rights: Vec<String>) -> Change {
    Change::PutRole(RoleRecord { name: name.into(), rights })
}

/// The state a registry should hold, as the registry's contract describes it (written from
/// `Change`'s and `Registry::apply`'s documentation, not from their code): rule lists
/// normalised; a deleted user's keys deleted with it; a deleted role dropped from every user.
#[derive(Debug, Clone, PartialEq, Default)]
struct PgState {
    users: BTreeMap<String, UserRecord>,
    roles: BTreeMap<String, RoleRecord>,
    keys: BTreeMap<KeyId, KeyRecord>,
    next_seq: u64,
}

/// A rule list as a registry holds it (each rule's normalised text), or `None` when it must
/// refuse it: too many rules, one that does not parse, an IP rule among rights.
fn pg_rules(raw: &[String], rights: bool) -> Option<Vec<String>> {
    if raw.len() > MAX_RULES {
        return None;
    }
    raw.iter()
        .map(|text| match parse_rule(text) {
            Ok(Rule::Ip(_)) if rights => None,
            Ok(rule) => Some(rule.text()),
            Err(_) => None,
        })
        .collect()
}

impl PgState {
    /// Applies `change`, or says why a registry must refuse it (then nothing changes).
    fn apply(&mut self, change: &Change) -> Result<(), &'static str> {
        match change {
            Change::PutUser(user) => {
                let rights = pg_rules(&user.rights, true).ok_or("rights it cannot hold")?;
                self.users.insert(user.id.clone(), UserRecord { rights, ..user.clone() });
            }
            Change::DeleteUser(id) => {
                self.users.remove(id);
                self.keys.retain(|_, key| key.user_id != *id);
            }
            Change::PutRole(role) => {
                let rights = pg_rules(&role.rights, true).ok_or("rights it cannot hold")?;
                self.roles.insert(role.name.clone(), RoleRecord { name: role.name.clone(), rights });
            }
            Change::DeleteRole(name) => {
                self.roles.remove(name);
                for user in self.users.values_mut() {
                    user.roles.retain(|role| role != name);
                }
            }
            Change::PutKey(key) => {
                if self.keys.values().any(|other| other.id != key.id && other.hint == key.hint && other.digest == key.digest) {
                    return Err("the secret digest of another key");
                }
                let rules = pg_rules(&key.rules, false).ok_or("rules it cannot hold")?;
                if !self.users.contains_key(&key.user_id) {
                    return Err("a missing user");
                }
                let last_used_at = key.last_used_at.max(self.keys.get(&key.id).and_then(|old| old.last_used_at));
                self.next_seq = self.next_seq.max(key.seq.saturating_add(1));
                self.keys.insert(key.id, KeyRecord { rules, last_used_at, ..key.clone() });
            }
            Change::DeleteKey(id) => {
                self.keys.remove(id);
            }
        }
        Ok(())
    }

    /// What its rule interner holds: each distinct rule its lists use, and an index per
    /// distinct list of more than 16 rules (`INDEX_FROM` in rule.rs); nothing else.
    fn interned(&self) -> (usize, usize) {
        let lists: Vec<&Vec<String>> = self
            .users
            .values()
            .map(|u| &u.rights)
            .chain(self.roles.values().map(|r| &r.rights))
            .chain(self.keys.values().map(|k| &k.rules))
            .collect();
        let rules: HashSet<&str> = lists.iter().flat_map(|list| list.iter().map(String::as_str)).collect();
        let indexed: HashSet<String> = lists.iter().filter(|list| list.len() > 16).map(|list| list.join("\n")).collect();
        (rules.len(), indexed.len())
    }

    fn dump(&self) -> (PgState, (usize, usize)) {
        (self.clone(), self.interned())
    }
}

/// Everything a registry holds, canonically: its users, roles, keys (each found by its id),
/// the next sequence number, and what its rule interner holds.
fn pg_dump(registry: &Registry) -> (PgState, (usize, usize)) {
    let users = registry.users().map(|u| (u.id.to_string(), user_record(u))).collect();
    let roles = registry.roles().map(|r| (r.name.to_string(), RoleRecord { name: r.name.to_string(), rights: r.rights.texts() })).collect();
    let mut keys = BTreeMap::new();
    for key in registry.keys() {
        assert!(registry.key_by_id(&key.id).is_some_and(|found| found.id == key.id), "key {} is listed but not found by its id", key.id);
        assert!(keys.insert(key.id, record_of(key)).is_none(), "key {} is listed twice", key.id);
    }
    assert_eq!(keys.len(), registry.key_count(), "keys listed and counted");
    (PgState { users, roles, keys, next_seq: registry.next_seq() }, registry.interned())
}

/// Where two dumps differ, briefly: each entity that differs, and the counts.
fn pg_diff(got: &(PgState, (usize, usize)), want: &(PgState, (usize, usize))) -> String {
    fn entries<K: Ord + std::fmt::Debug, V: PartialEq + std::fmt::Debug>(
        what: &str,
        got: &BTreeMap<K, V>,
        want: &BTreeMap<K, V>,
    ) -> Vec<String> {
        let mut out = Vec::new();
        for key in got.keys().chain(want.keys().filter(|k| !got.contains_key(k))) {
            match (got.get(key), want.get(key)) {
                (a, b) if a == b => {}
                (a, b) => out.push(format!("{what} {key:?}: holds {a:?}, should hold {b:?}")),
            }
        }
        out
    }
    let (g, w) = (&got.0, &want.0);
    let mut out = entries("user", &g.users, &w.users);
    out.extend(entries("role", &g.roles, &w.roles));
    out.extend(entries("key", &g.keys, &w.keys));
    if g.next_seq != w.next_seq {
        out.push(format!("next sequence number {}, should be {}", g.next_seq, w.next_seq));
    }
    if got.1 != want.1 {
        out.push(format!("interned (rules, indexes) {:?}, should be {:?}", got.1, want.1));
    }
    out.join("; ")
}

/// Asserts that `registry` holds `want`, saying `what` happened otherwise.
fn assert_pg_holds(registry: &Registry, want: &(PgState, (usize, usize)), what: impl FnOnce() -> String) {
    let got = pg_dump(registry);
    assert!(got == *want, "{}: {}", what(), pg_diff(&got, want));
}

struct PgTemplate {
    /// The changes that make the template world (3 roles, 3 users, 4 keys).
    world: Vec<Change>,
    /// The template world as the model holds it.
    model: PgState,
    /// Valid changes (as keygate encodes them) that batches are made of: of every kind, to
    /// entities present and absent.
    pool: Vec<Value>,
    /// Texts to put where the decoder reads a text (or anything else).
    words: Vec<String>,
}

fn pg_template() -> &'static PgTemplate {
    static TEMPLATE: OnceLock<PgTemplate> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let world = vec![
            pg_role("reader", owned(&["session:get*", "data:entity???Record"])),
            pg_role("apps", owned(&["apps/com.hornbill.core/*:*", "dav=GET /docs/*"])),
            pg_role("wide", wide_rules()),
            pg_user("alice", UserStatus::Active, owned(&["session:*"]), &["reader"]),
            pg_user("bob", UserStatus::Active, vec![], &["reader", "apps", "wide"]),
            pg_user("carol", UserStatus::Suspended, owned(&["*:*"]), &[]),
            Change::PutKey(pg_key(1, "alice", KeyState::Active, owned(&["session:getSessionInfo", "ip=10.0.0.0/8"]), Some(T0 + 5))),
            Change::PutKey(pg_key(2, "bob", KeyState::Suspended, vec![], None)),
            Change::PutKey(pg_key(3, "carol", KeyState::Revoked, wide_rules(), None)),
            Change::PutKey(pg_key(4, "alice", KeyState::Active, owned(&["*:*"]), Some(T0))),
        ];
        let mut model = PgState::default();
        for change in &world {
            model.apply(change).expect("the model takes the template world");
        }
        assert_pg_holds(&pg_registry(&world), &model.dump(), || "the template world".into());

        let mut updated = pg_key(1, "alice", KeyState::Suspended, owned(&["ip=2001:db8::/32", " session:* "]), None);
        updated.updated_at = T0 + DAY / 2;
        let mut moved = pg_key(2, "alice", KeyState::Active, owned(&["data:*"]), Some(T0 + 9));
        moved.description = "moved to alice \u{202e} \"quoted\"".into();
        let mut twin = pg_key(7, "bob", KeyState::Active, vec![], None);
        (twin.hint, twin.digest) = (pg_key(2, "bob", KeyState::Active, vec![], None).hint, [2; 32]);
        let mut last = pg_key(8, "dave", KeyState::Active, owned(&["*:*"]), Some(-1));
        last.seq = i64::MAX as u64 - 1;
        last.expires_at = 8_640_000_000_000_000;
        let pool_changes = vec![
            pg_user("dave", UserStatus::Active, owned(&["data:*"]), &["apps"]),
            pg_user("alice", UserStatus::Suspended, vec![], &["reader", "apps", "ghost", "reader"]),
            pg_user("erin", UserStatus::Archived, wide_rules(), &[]),
            Change::DeleteUser("bob".into()),
            Change::DeleteUser("nobody".into()),
            Change::DeleteUser("erin".into()),
            pg_role("reader", owned(&["dav=* /docs/", "session:*"])),
            pg_role("ops", wide_rules()),
            Change::DeleteRole("reader".into()),
            Change::DeleteRole("apps".into()),
            Change::PutKey(pg_key(5, "dave", KeyState::Active, owned(&["*:*"]), None)),
            Change::PutKey(updated),
            Change::PutKey(moved),
            Change::PutKey(pg_key(6, "erin", KeyState::Active, wide_rules(), Some(T0))),
            Change::PutKey(twin),
            Change::PutKey(last),
            Change::DeleteKey(KeyId::from_bytes([1; 16])),
            Change::DeleteKey(KeyId::from_bytes([9; 16])),
        ];
        // Every input starts from these: a lossy encoding would otherwise go unseen, round trips
        // of what it wrote agreeing with it.
        let all: Vec<Change> = world.iter().chain(&pool_changes).cloned().collect();
        match decode_pg_changes(&encode_pg_changes(&all)) {
            Ok(decoded) => assert!(decoded == all, "the template's changes come back otherwise from their JSON: {decoded:?}"),
            Err(e) => panic!("the template's changes are refused from their JSON: {e}"),
        }
        let pool = pool_changes
            .iter()
            .map(|change| {
                let list: Value = serde_json::from_str(&encode_pg_changes(std::slice::from_ref(change))).expect("keygate's own JSON");
                list.get(0).cloned().expect("one change")
            })
            .collect();

        let secret = String::from_utf8(unknown_secret()).expect("a secret is ASCII");
        let id = |n: u8| KeyId::from_bytes([n; 16]).to_string();
        let mut words = owned(&[
            "",
            " ",
            "active",
            "suspended",
            "archived",
            "revoked",
            "Active",
            "REVOKED",
            "alice",
            "bob",
            "dave",
            "erin",
            "ghost",
            "reader",
            "wide",
            ".",
            "..",
            "a b",
            "al\u{0}ice",
            "alice\n",
            "al\u{202e}ice",
            "ålice",
            "alice@example.com",
            "h1Z9",
            "h0Z9",
            "ab1",
            "ab1é",
            "abc ",
            "ab\u{0}1",
            "session:*",
            "ip=10.0.0.0/8",
            "dav=GET /x",
            "*:*",
            "bad rule",
            " *:* ",
            "putUser",
            "deleteKey",
            "null",
            "[]",
            "1",
            "true",
        ]);
        words.extend([1, 2, 5, 9].map(id));
        words.extend([
            id(1).chars().take(25).collect(),
            format!("{}0", id(1)),
            id(1).to_uppercase(),
            format!("key_{}", "z".repeat(22)),
            format!("key_{}", "0".repeat(22)),
            format!(" {}", id(2)),
            "02".repeat(32),
            "0A".repeat(32),
            "0".repeat(63),
            "0".repeat(65),
            "zz".repeat(32),
            "\u{e9}".repeat(32),
            secret.clone(),
            format!("user{secret}"),
            format!("session:{secret}"),
            "a".repeat(128),
            "a".repeat(129),
            "d".repeat(1025),
        ]);
        PgTemplate { world, model, pool, words }
    })
}

/// A registry holding `changes` (each must apply).
fn pg_registry(changes: &[Change]) -> Registry {
    let mut registry = Registry::default();
    for change in changes {
        registry.apply(change.clone()).unwrap_or_else(|e| panic!("the template world's {change:?} was refused: {e}"));
    }
    registry
}

const PG_FIELDS: &[&str] = &[
    "op",
    "id",
    "name",
    "status",
    "rights",
    "roles",
    "seq",
    "userId",
    "description",
    "state",
    "expiresAt",
    "createdAt",
    "updatedAt",
    "lastUsedAt",
    "hint",
    "digest",
    "rules",
];
const PG_OPS: &[&str] =
    &["putUser", "deleteUser", "putRole", "deleteRole", "putKey", "deleteKey", "PutUser", "putuser", "put", "", "putKey ", "deleteAudit"];
const PG_INTS: &[i64] = &[
    0,
    -1,
    1,
    i64::MIN,
    i64::MIN + 1,
    i64::MAX,
    i64::MAX - 1,
    8_640_000_000_000_000,
    8_640_000_000_000_001,
    -8_640_000_000_000_000,
    -8_640_000_000_000_001,
    T0,
    T0 + DAY,
];
/// Number texts a `serde_json::Value` cannot hold as given (or JSON cannot).
const PG_RAW_NUMBERS: &[&str] = &[
    "1e400",
    "-1e400",
    "1.5",
    "1.0",
    "-0",
    "0.0",
    "1E3",
    "1e-400",
    "9223372036854775808",
    "-9223372036854775809",
    "18446744073709551615",
    "18446744073709551616",
    "123456789012345678901234567890",
    "1700000000000.0",
    "0x10",
    "01",
    "+1",
    "NaN",
    "Infinity",
    "\"1\"",
];

/// JSON text that replaces a marker string once the value is serialised: what a
/// `serde_json::Value` cannot hold (number texts, duplicate keys, very deep nesting).
#[derive(Default)]
struct PgRaw {
    texts: Vec<String>,
}

impl PgRaw {
    fn marker(&mut self, text: String) -> String {
        self.texts.push(text);
        format!("\u{0}raw{}\u{0}", self.texts.len() - 1)
    }

    fn value(&mut self, text: String) -> Value {
        Value::String(self.marker(text))
    }

    fn render(&self, value: &Value) -> String {
        let mut text = value.to_string();
        for (i, raw) in self.texts.iter().enumerate() {
            text = text.replace(&format!("\"\\u0000raw{i}\\u0000\""), raw);
        }
        text
    }
}

/// A value to put where the decoder reads a field: of any JSON type, a hostile text, a
/// number out of range, deep nesting, another change.
fn pg_hostile(input: &mut Input, template: &PgTemplate, raw: &mut PgRaw) -> Value {
    match input.byte() % 12 {
        0 => input.choose(&[Value::Null, Value::Bool(true), Value::Bool(false), Value::Object(Map::new()), Value::Array(vec![])]).clone(),
        1 => Value::from(*input.choose(PG_INTS)),
        2 => raw.value(input.choose(PG_RAW_NUMBERS).to_string()),
        3 | 4 => Value::String(input.choose(&template.words).clone()),
        5 => Value::String(text_of(input.bytes()).into_owned()),
        6 => {
            let word = Value::String(input.choose(&template.words).clone());
            match input.byte() % 6 {
                0 => Value::Array(vec![]),
                1 => Value::Array(vec![word]),
                2 => Value::Array(vec![Value::from(1)]),
                3 => Value::Array(vec![word, Value::Null]),
                4 => Value::Array(vec![word; 1001]),
                _ => Value::Array(vec![Value::Array(vec![word])]),
            }
        }
        7 => {
            let depth = *input.choose(&[16usize, 126, 127, 128, 129, 1000]);
            let (open, close) = *input.choose(&[("[", "]"), ("{\"a\":", "}")]);
            raw.value(format!("{}1{}", open.repeat(depth), close.repeat(depth)))
        }
        8 => {
            let c = *input.choose(&['a', 'é', '\u{202e}', '\0', '_', '😀', '\n', '"', '\\']);
            let n = *input.choose(&[127usize, 128, 129, 1024, 1025, 100_000]);
            Value::String(std::iter::repeat_n(c, n).collect())
        }
        9 => Value::from(input.u64() as i64),
        10 => input.choose(&template.pool).clone(),
        _ => serde_json::Number::from_f64(f64::from_bits(input.u64())).map_or(Value::Null, Value::Number),
    }
}

/// A text edited a little: a character inserted (non-ASCII, control, bidi, separator), the
/// text cut or shortened, upper-cased, doubled.
fn pg_edit_text(text: &str, input: &mut Input) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    let at = input.byte() as usize % (chars.len() + 1);
    match input.byte() % 5 {
        0 => chars.insert(at, *input.choose(&['é', '\u{202e}', '\0', ' ', '\n', '_', '-', '@', '.', '/', 'Z', '0', '\u{ad}', '\u{200b}'])),
        1 => chars.truncate(at),
        2 => {
            if at < chars.len() {
                chars.remove(at);
            }
        }
        3 => chars.iter_mut().for_each(|c| *c = c.to_ascii_uppercase()),
        _ => chars.extend(text.chars()),
    }
    chars.into_iter().collect()
}

/// One mutation of the batch: an entry copied, replaced, removed or moved, or one of its
/// fields replaced (by a value of any type), removed, added, duplicated, edited.
fn pg_mutate(entries: &mut Vec<Value>, input: &mut Input, template: &PgTemplate, raw: &mut PgRaw) {
    if entries.is_empty() {
        entries.push(input.choose(&template.pool).clone());
    }
    let at = input.byte() as usize % entries.len();
    let op = input.byte() % 14;
    match op {
        5 => {
            let copy = entries[at].clone();
            let to = input.byte() as usize % (entries.len() + 1);
            entries.insert(to, copy);
            return;
        }
        6 => {
            entries[at] = pg_hostile(input, template, raw);
            return;
        }
        7 => {
            entries.remove(at);
            return;
        }
        8 => {
            let other = input.byte() as usize % entries.len();
            entries.swap(at, other);
            return;
        }
        _ => {}
    }
    let Value::Object(entry) = &mut entries[at] else { return };
    let pick = input.byte();
    let field = match entry.keys().nth(pick as usize % 32) {
        Some(field) if pick < 160 => field.clone(),
        _ => input.choose(PG_FIELDS).to_string(),
    };
    match op {
        0..=2 => {
            entry.insert(field, pg_hostile(input, template, raw));
        }
        3 => {
            entry.remove(&field);
        }
        4 => {
            let name = input.choose(&["extra", "OP", "", "op ", "Id"]).to_string();
            entry.insert(name, pg_hostile(input, template, raw));
        }
        9 => {
            entry.insert("op".into(), Value::String(input.choose(PG_OPS).to_string()));
        }
        10 => {
            if let Some(Value::String(text)) = entry.get_mut(&field) {
                *text = pg_edit_text(text, input);
            }
        }
        11 => {
            if let Some(Value::Array(items)) = entry.get_mut(&field) {
                let item = input.byte() as usize;
                match input.byte() % 4 {
                    0 => items.push(pg_hostile(input, template, raw)),
                    1 if !items.is_empty() => {
                        let n = items.len();
                        items[item % n] = pg_hostile(input, template, raw);
                    }
                    2 if !items.is_empty() => {
                        let n = items.len();
                        items.remove(item % n);
                    }
                    _ => items.push(Value::String(input.choose(&template.words).clone())),
                }
            }
        }
        12 => {
            if let Some(n) = entry.get(&field).and_then(Value::as_i64) {
                let delta = i64::from(input.byte() as i8);
                let edited = match input.byte() % 3 {
                    0 => n.wrapping_add(delta),
                    1 => n.wrapping_neg(),
                    _ => n.wrapping_mul(1 << (input.byte() % 64)),
                };
                entry.insert(field, Value::from(edited));
            }
        }
        _ => {
            // The same field twice in one object: a marker key that becomes the field's name.
            let key = raw.marker(format!("{:?}", field.as_str()));
            entry.insert(key, pg_hostile(input, template, raw));
        }
    }
}

/// Input: a first byte; from 240 up, the rest is the row's text itself. Otherwise a batch
/// of 1–8 valid changes of a template world (every kind, to entities present and absent), then
/// up to 11 mutations (a field of another JSON type or a hostile text, dropped, duplicated,
/// added; numbers out of range, 1e400, deep nesting; unknown ops; names with non-ASCII,
/// control and bidi characters, too long, holding a secret; key ids and digests malformed;
/// entries copied, dropped, swapped), then how the row frames the list. Decoding must never
/// panic; a row it refuses is STORE_CORRUPT with a short message holding nothing
/// secret-shaped and no control character; a list it takes re-encodes to JSON that decodes to
/// the same changes; and applied to the template world it must agree with a reference model
/// (`PgState`) change by change: a change applies as the model says, or is refused exactly when
/// the model refuses it and leaves the registry (users, roles, keys, next sequence number,
/// interned rules) exactly as it was; the catch-up itself (`apply_changes`) either applies the
/// whole batch or fails STORE_CORRUPT at the first change it cannot apply (skipping only
/// a key whose user a later change deletes), holding what the changes before it made.
pub fn pg_changes(data: &[u8]) {
    let template = pg_template();
    let mut input = Input::new(data);
    let mode = input.byte();
    if mode >= 240 {
        check_pg_text(&text_of(input.rest()));
        return;
    }
    let mut raw = PgRaw::default();
    let mut entries: Vec<Value> = (0..=mode % 8).map(|_| input.choose(&template.pool).clone()).collect();
    for _ in 0..input.byte() % 12 {
        pg_mutate(&mut entries, &mut input, template, &mut raw);
    }
    let mut text = raw.render(&Value::Array(entries));
    match input.byte() % 16 {
        0 => text = format!("{{\"changes\":{text}}}"),
        1 => text = format!("{text}{text}"),
        2 => {
            let cut = (input.u64() % (text.len() as u64 + 1)) as usize;
            let cut = (0..=cut).rev().find(|&at| text.is_char_boundary(at)).unwrap_or(0);
            text.truncate(cut);
        }
        3 => text.push_str(" \n\t"),
        4 => text.insert(0, '\u{feff}'),
        5 => text = input.choose(&["null", "[]", "\"[]\"", "[null]", "{}", "[[]]", ""]).to_string(),
        _ => {}
    }
    check_pg_text(&text);
}

/// The first 300 characters of `text`, for a failure's message.
fn pg_shown(text: &str) -> String {
    let shown: String = text.chars().take(300).collect();
    if shown.len() < text.len() {
        format!("{shown:?}…")
    } else {
        format!("{shown:?}")
    }
}

/// A message of an error a hostile row causes: short, nothing secret-shaped, no control character.
fn check_pg_message(message: &str, row: &str) {
    assert!(
        find_secret(message.as_bytes()).is_none() && redact_secrets(message) == message,
        "the error for row {} holds secret-shaped text: {message}",
        pg_shown(row)
    );
    assert!(message.chars().count() <= 2000, "the error for row {} is {} characters long", pg_shown(row), message.chars().count());
    assert!(!message.chars().any(char::is_control), "the error for row {} holds a control character: {message:?}", pg_shown(row));
}

fn check_pg_text(text: &str) {
    let changes = match decode_pg_changes(text) {
        Ok(changes) => changes,
        Err(e) => {
            assert_eq!(e.code, ErrorCode::StoreCorrupt, "row {} refused as {e}", pg_shown(text));
            check_pg_message(&e.message, text);
            return;
        }
    };
    let again = encode_pg_changes(&changes);
    match decode_pg_changes(&again) {
        Ok(back) => assert_eq!(back, changes, "row {} decodes, but its re-encoding {} decodes otherwise", pg_shown(text), pg_shown(&again)),
        Err(e) => panic!("row {} decodes, but its re-encoding {} is refused: {e}", pg_shown(text), pg_shown(&again)),
    }
    check_pg_apply(text, changes);
}

fn check_pg_apply(text: &str, changes: Vec<Change>) {
    let template = pg_template();
    // Change by change, on a registry of the template world, against the model.
    let mut model = template.model.clone();
    let mut stepwise = pg_registry(&template.world);
    // Where the catch-up must stop: the model as the first change it cannot apply leaves it.
    let mut stop: Option<PgState> = None;
    for (i, change) in changes.iter().enumerate() {
        let before = pg_dump(&stepwise);
        let orphan_of = match change {
            Change::PutKey(key) if !model.users.contains_key(&key.user_id) => Some(key.user_id.as_str()),
            _ => None,
        };
        let expected = model.apply(change);
        let got = stepwise.apply(change.clone());
        let what = || format!("change {i} of row {}: {change:?}", pg_shown(text));
        match (got, expected) {
            (Ok(()), Ok(())) => assert_pg_holds(&stepwise, &model.dump(), || format!("{} applied otherwise than the model says", what())),
            (Err(e), Err(_)) => {
                check_pg_message(&e.message, text);
                assert_pg_holds(&stepwise, &before, || format!("{} was refused ({e}) but changed the registry", what()));
            }
            (Ok(()), Err(why)) => panic!("{} applied, but holds {why}", what()),
            (Err(e), Ok(())) => panic!("{} was refused ({e}), but the model applies it", what()),
        }
        if expected.is_err() && stop.is_none() {
            let deleted_later =
                orphan_of.is_some_and(|user| changes[i + 1..].iter().any(|c| matches!(c, Change::DeleteUser(id) if id == user)));
            if !deleted_later {
                stop = Some(model.clone());
            }
        }
    }
    // The catch-up itself, on another registry of the template world.
    let mut caught_up = pg_registry(&template.world);
    let result = apply_changes(&mut caught_up, changes, |_| {});
    match (result, stop) {
        (Ok(()), None) => {
            assert_pg_holds(&caught_up, &model.dump(), || format!("row {}: the catch-up applied it otherwise", pg_shown(text)))
        }
        (Err(e), Some(at)) => {
            assert_eq!(e.code, ErrorCode::StoreCorrupt, "row {}: the catch-up failed as {e}", pg_shown(text));
            check_pg_message(&e.message, text);
            assert_pg_holds(&caught_up, &at.dump(), || format!("row {}: the catch-up failed ({e}) holding another state", pg_shown(text)));
        }
        (Ok(()), Some(_)) => panic!("row {}: the catch-up applied a batch holding a change it cannot apply", pg_shown(text)),
        (Err(e), None) => panic!("row {}: the catch-up refused ({e}) a batch whose changes all apply", pg_shown(text)),
    }
}
