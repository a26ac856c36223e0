//! The rule language: API rules `<service>:<api>`, IP rules `ip=<addr>[/<prefix>]`
//! and WebDAV rules `dav=<method> <path>` (see `dav.rs`).

use std::net::IpAddr;
use std::sync::Arc;

use smallvec::SmallVec;

use crate::dav::{DavNames, DavRule};
use crate::error::{describe_char, quote, redact_secrets, Error, ErrorCode, Result};
use crate::glob::{is_name_byte, FoldedName, Glob};
use crate::ip::IpNet;
use crate::model::check_no_secret;
use crate::prefetch::prefetch;
use crate::secret::find_secret;

/// Longest rule text accepted (after trimming).
pub const MAX_RULE_LEN: usize = 256;
/// Most rules one key, user or role may hold.
pub const MAX_RULES: usize = 1000;

/// A compiled API rule; `text` is the normalised rule as shown to users.
#[derive(Debug, PartialEq, Eq)]
pub struct ApiRule {
    pub text: Box<str>,
    service: Glob,
    api: Glob,
}

impl ApiRule {
    pub fn matches(&self, service: &[u8], api: &[u8]) -> bool {
        self.matches_call(&CallNames::new(service, api))
    }

    #[inline]
    pub fn matches_call(&self, call: &CallNames) -> bool {
        self.service.matches_folded(&call.service) && self.api.matches_folded(&call.api)
    }
}

/// A call's service and API names, folded once for every rule list it is matched against.
#[derive(Debug, Clone)]
pub struct CallNames {
    service: FoldedName,
    api: FoldedName,
}

impl CallNames {
    pub fn new(service: &[u8], api: &[u8]) -> CallNames {
        CallNames { service: FoldedName::new(service), api: FoldedName::new(api) }
    }

    /// Whether both names are valid service and API names (step 3 of the decision).
    #[inline]
    pub fn are_valid(&self) -> bool {
        self.service.is_valid_name() && self.api.is_valid_name()
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Rule {
    Api(ApiRule),
    Ip(IpNet),
    Dav(DavRule),
}

impl Rule {
    /// The normalised text of the rule (trimmed; IP rules in canonical form).
    pub fn text(&self) -> String {
        match self {
            Rule::Api(rule) => rule.text.to_string(),
            Rule::Ip(net) => format!("ip={net}"),
            Rule::Dav(rule) => rule.text.to_string(),
        }
    }
}

/// `INVALID_RULE` for `rule`, saying `why`. The reason may quote a part of the rule (an
/// address, a prefix, a suggested rule), so it is redacted as the quoted rule is.
pub(crate) fn invalid(rule: &str, why: impl std::fmt::Display) -> Error {
    Error::new(ErrorCode::InvalidRule, format!("invalid rule {}: {}", quote(rule), redact_secrets(&why.to_string())))
}

/// Parses and compiles one rule, or says precisely what is wrong with it.
pub fn parse_rule(raw: &str) -> Result<Rule> {
    // Rules are ASCII (the contract): checked first, so that everything after may
    // treat a byte as a character.
    if let Some((at, c)) = raw.chars().enumerate().find(|&(_, c)| !c.is_ascii()) {
        return Err(invalid(raw, format_args!("{} at position {} is not allowed: rules are ASCII only", describe_char(c), at + 1)));
    }
    let rule = raw.trim();
    if rule.is_empty() {
        return Err(invalid(raw, "a rule cannot be empty"));
    }
    if rule.len() > MAX_RULE_LEN {
        return Err(invalid(raw, format_args!("longer than {MAX_RULE_LEN} characters")));
    }
    // Hornbill's rules are entered one per line: a block of them pasted as one rule is named
    // as such, rather than by whatever its second line breaks (`prefix "8\nsession:*"`).
    if rule.contains(['\n', '\r']) {
        return Err(invalid(raw, "a rule is one line, and this one holds a line break: give each line as a rule of its own"));
    }
    match rule.split_at_checked(3) {
        Some((tag, address)) if tag.eq_ignore_ascii_case("ip=") => parse_ip_rule(rule, address),
        _ => match rule.split_at_checked(4) {
            Some((tag, body)) if tag.eq_ignore_ascii_case("dav=") => DavRule::parse(rule, body).map(Rule::Dav),
            _ => parse_api_rule(rule),
        },
    }
}

/// Validates one rule as a caller gives it: its normalised text, or
/// `INVALID_RULE` naming what is wrong. Unlike [`parse_rule`] (which also reads
/// rules back from a store), it refuses a rule holding a secret.
pub fn validate_rule(raw: &str) -> Result<String> {
    check_no_secret("the rule", raw, ErrorCode::InvalidRule)?;
    parse_rule(raw).map(|rule| rule.text())
}

fn parse_ip_rule(rule: &str, address: &str) -> Result<Rule> {
    IpNet::parse(address).map(Rule::Ip).map_err(|why| invalid(rule, why))
}

fn parse_api_rule(rule: &str) -> Result<Rule> {
    let Some((service, api)) = rule.split_once(':') else {
        return Err(invalid(rule, "expected <service>:<api> (or ip=<address>[/<prefix>], or dav=<method> <path>)"));
    };
    if api.contains(':') {
        let hint = hornbill_operation(rule).map_or(String::new(), |meant| format!(" (did you mean {meant}?)"));
        return Err(invalid(rule, format_args!("expected exactly one ':' between service and api{hint}")));
    }
    check_pattern(rule, "service", service)?;
    check_pattern(rule, "api", api)?;
    Ok(Rule::Api(ApiRule { text: rule.into(), service: Glob::compile(service), api: Glob::compile(api) }))
}

/// The rule meant by an operation written as Hornbill's API reference writes
/// it, `<service>::<operation>`: `session::userLogon` is `session:userLogon`,
/// and an application's `com.hornbill.servicemanager::Requests/logRequest` is
/// called at `/xmlmc/apps/com.hornbill.servicemanager/Requests/?method=logRequest`,
/// so it is `apps/com.hornbill.servicemanager/Requests:logRequest`. `None` when
/// the text is not of that form or the rule it suggests would not be valid.
fn hornbill_operation(rule: &str) -> Option<String> {
    let (service, operation) = rule.split_once("::")?;
    if service.contains(':') || operation.contains(':') {
        return None;
    }
    // An application id is a reverse domain name; its service lives under `apps/`.
    let apps = if service.contains('.') && !service.to_ascii_lowercase().starts_with("apps/") { "apps/" } else { "" };
    let meant = match operation.rsplit_once('/') {
        Some((entity, api)) => format!("{apps}{service}/{entity}:{api}"),
        None => format!("{apps}{service}:{operation}"),
    };
    let valid = parse_api_rule(&meant).is_ok() && find_secret(meant.as_bytes()).is_none();
    valid.then_some(meant)
}

fn check_pattern(rule: &str, part: &str, pattern: &str) -> Result<()> {
    if pattern.is_empty() {
        return Err(invalid(rule, format_args!("the {part} pattern is empty")));
    }
    if let Some(bad) = pattern.chars().find(|&c| !(c == '*' || c == '?' || (c.is_ascii() && is_name_byte(c as u8)))) {
        return Err(invalid(
            rule,
            format_args!("{bad:?} is not allowed in the {part} pattern (allowed: A-Z a-z 0-9 _ - . / and the wildcards * ?)"),
        ));
    }
    Ok(())
}

/// A parsed rule list, kept in list order; rules are shared between keys
/// through the [`RuleInterner`], and so is the index of a long list.
#[derive(Debug, Clone, Default)]
pub struct RuleList {
    /// Held inline up to [`INLINE_RULES`]: a key's rules then sit in the key's own
    /// cache lines, which a check has already loaded (no further memory access).
    rules: SmallVec<[Arc<Rule>; INLINE_RULES]>,
    /// For lists longer than [`INDEX_FROM`] rules.
    index: Option<Arc<RuleIndex>>,
    /// The kinds of rule the list holds, so that a check asks without reading the rules.
    kinds: RuleKinds,
}

/// Rules a list holds without a separate allocation (most keys hold a few).
const INLINE_RULES: usize = 5;

/// Which kinds of rule a list holds (bits).
#[derive(Debug, Clone, Copy, Default)]
struct RuleKinds(u8);

impl RuleKinds {
    const API: u8 = 1;
    const IP: u8 = 2;
    const DAV: u8 = 4;

    fn of(rules: &[Arc<Rule>]) -> RuleKinds {
        RuleKinds(rules.iter().fold(0, |kinds, rule| {
            kinds
                | match **rule {
                    Rule::Api(_) => Self::API,
                    Rule::Ip(_) => Self::IP,
                    Rule::Dav(_) => Self::DAV,
                }
        }))
    }

    fn has(self, kind: u8) -> bool {
        self.0 & kind != 0
    }
}

/// Lists of more rules than this are indexed: below it, a scan with the glob's
/// cheap rejects costs less than hashing the call's names.
pub const INDEX_FROM: usize = 16;

/// A long list compiled once: its exact API rules hashed by (service, api), and the
/// positions of its other API rules (scanned in list order).
#[derive(Debug)]
struct RuleIndex {
    exact: hashbrown::HashMap<ExactPair, u32, rustc_hash::FxBuildHasher>,
    others: Box<[u32]>,
}

/// The lower-cased service and api of a rule with no wildcard.
#[derive(Debug, PartialEq, Eq)]
struct ExactPair {
    service: Box<[u8]>,
    api: Box<[u8]>,
}

/// A call's folded names, looked up in [`RuleIndex::exact`] without building a pair.
struct PairRef<'a>(&'a [u8], &'a [u8]);

impl std::hash::Hash for PairRef<'_> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // 0xff is no name byte: ("ab", "c") and ("a", "bc") hash apart.
        state.write(self.0);
        state.write_u8(0xff);
        state.write(self.1);
    }
}

impl std::hash::Hash for ExactPair {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        PairRef(&self.service, &self.api).hash(state);
    }
}

impl hashbrown::Equivalent<ExactPair> for PairRef<'_> {
    fn equivalent(&self, key: &ExactPair) -> bool {
        self.0 == &*key.service && self.1 == &*key.api
    }
}

impl RuleIndex {
    fn new(rules: &[Arc<Rule>]) -> RuleIndex {
        let mut index = RuleIndex { exact: hashbrown::HashMap::default(), others: Box::default() };
        let mut others = Vec::new();
        for (at, rule) in rules.iter().enumerate() {
            let Ok(at) = u32::try_from(at) else { break };
            match &**rule {
                Rule::Ip(_) | Rule::Dav(_) => {}
                Rule::Api(api_rule) => {
                    match (api_rule.service.exact(), api_rule.api.exact()) {
                        (Some(service), Some(api)) => {
                            // The first of rules equal but for case keeps its place.
                            index.exact.entry(ExactPair { service: service.into(), api: api.into() }).or_insert(at);
                        }
                        _ => others.push(at),
                    }
                }
            }
        }
        index.others = others.into();
        index
    }
}

impl RuleList {
    fn new(rules: SmallVec<[Arc<Rule>; INLINE_RULES]>, index: Option<Arc<RuleIndex>>) -> RuleList {
        let kinds = RuleKinds::of(&rules);
        RuleList { rules, index, kinds }
    }

    pub fn texts(&self) -> Vec<String> {
        self.rules.iter().map(|rule| rule.text()).collect()
    }

    pub fn has_api_rules(&self) -> bool {
        self.kinds.has(RuleKinds::API)
    }

    pub fn has_ip_rules(&self) -> bool {
        self.kinds.has(RuleKinds::IP)
    }

    pub fn has_dav_rules(&self) -> bool {
        self.kinds.has(RuleKinds::DAV)
    }

    /// Starts loading the list's rules (a hint to the CPU: a check reads them soon):
    /// the list's allocation when it has one, else the first rule itself.
    #[inline]
    pub(crate) fn prefetch(&self) {
        match self.rules.first() {
            Some(first) if self.rules.spilled() => prefetch(first),
            Some(first) => prefetch(&**first),
            None => {}
        }
    }

    /// The first WebDAV rule (in list order) matching the request, if any.
    pub fn first_dav_match(&self, request: &DavNames) -> Option<&DavRule> {
        if !self.has_dav_rules() {
            return None;
        }
        self.rules.iter().find_map(|rule| match &**rule {
            Rule::Dav(dav_rule) if dav_rule.matches(request) => Some(dav_rule),
            _ => None,
        })
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Rule>> {
        self.rules.iter()
    }

    /// The first API rule (in list order) matching the call, if any.
    #[inline]
    pub fn first_api_match(&self, call: &CallNames) -> Option<&ApiRule> {
        let api_rule_at = |at: u32| match self.rules.get(usize::try_from(at).ok()?).map(|rule| &**rule) {
            Some(Rule::Api(api_rule)) => Some(api_rule),
            _ => None,
        };
        let Some(index) = &self.index else {
            return self.rules.iter().find_map(|rule| match &**rule {
                Rule::Api(api_rule) if api_rule.matches_call(call) => Some(api_rule),
                _ => None,
            });
        };
        let exact = index.exact.get(&PairRef(call.service.as_bytes(), call.api.as_bytes())).copied();
        // A wildcard rule before the exact one comes first.
        let before = exact.unwrap_or(u32::MAX);
        let wildcard = index
            .others
            .iter()
            .take_while(|&&at| at < before)
            .find(|&&at| api_rule_at(at).is_some_and(|rule| rule.matches_call(call)))
            .copied();
        wildcard.or(exact).and_then(api_rule_at)
    }

    /// Outcome of the IP-rule step: no IP rules at all allows any (or no) address.
    pub fn ip_allows(&self, ip: Option<IpAddr>) -> bool {
        if !self.has_ip_rules() {
            return true;
        }
        let mut any_ip = false;
        for rule in self.rules.iter() {
            if let Rule::Ip(net) = &**rule {
                if ip.is_some_and(|addr| net.contains(addr)) {
                    return true;
                }
                any_ip = true;
            }
        }
        !any_ip
    }
}

/// Validates a list without compiling it for keeps: the normalised texts, or
/// the error of the first bad rule. Used to check a call before anything changes.
pub fn normalise_list<S: AsRef<str>>(raw: &[S], usage: RuleUse) -> Result<Vec<String>> {
    check_count(raw.len())?;
    raw.iter()
        .map(|text| {
            check_no_secret("the rule", text.as_ref(), ErrorCode::InvalidRule)?;
            let rule = parse_rule(text.as_ref())?;
            check_usage(text.as_ref(), &rule, usage)?;
            Ok(rule.text())
        })
        .collect()
}

fn check_count(count: usize) -> Result<()> {
    if count > MAX_RULES {
        return Err(Error::new(ErrorCode::InvalidRule, format!("{count} rules given; at most {MAX_RULES} are allowed")));
    }
    Ok(())
}

fn check_usage(raw: &str, rule: &Rule, usage: RuleUse) -> Result<()> {
    if usage == RuleUse::Rights && matches!(rule, Rule::Ip(_)) {
        return Err(invalid(raw, "user and role rights take API and WebDAV rules only, not IP rules"));
    }
    Ok(())
}

/// Deduplicates compiled rules so that keys sharing rule texts share their memory.
#[derive(Debug, Default)]
pub struct RuleInterner {
    /// Looked up for every rule of every key loaded: a fast hasher, since rule
    /// texts are the admin's, not a caller's (no flooding to defend against).
    by_text: std::collections::HashMap<String, Arc<Rule>, rustc_hash::FxBuildHasher>,
    /// Indexes of long lists, by the list's normalised texts (one per line): keys
    /// and users holding the same long list share one index.
    indexes: std::collections::HashMap<String, Arc<RuleIndex>>,
}

/// What a rule list is for: user and role rights may hold API and WebDAV rules, not IP rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleUse {
    KeyRules,
    Rights,
}

impl RuleInterner {
    /// Parses a whole list; the first bad rule fails the whole list, and then the
    /// interner holds what it held before (the rules taken for the list are released).
    pub fn parse_list<S: AsRef<str>>(&mut self, raw: &[S], usage: RuleUse) -> Result<RuleList> {
        check_count(raw.len())?;
        let mut rules = SmallVec::with_capacity(raw.len());
        for text in raw {
            match self.intern(text.as_ref(), usage) {
                Ok(rule) => rules.push(rule),
                Err(error) => {
                    self.release(RuleList::new(rules, None));
                    return Err(error);
                }
            }
        }
        let index = (rules.len() > INDEX_FROM).then(|| {
            let index = self.indexes.entry(list_key(&rules)).or_insert_with(|| Arc::new(RuleIndex::new(&rules)));
            index.clone()
        });
        Ok(RuleList::new(rules, index))
    }

    fn intern(&mut self, raw: &str, usage: RuleUse) -> Result<Arc<Rule>> {
        // Normalising is idempotent, so a trimmed text equal to a stored
        // normalised text denotes the same rule; but only an ASCII text (`trim` also
        // takes Unicode spaces, which `parse_rule` refuses).
        // A rule refused for this use is not taken in: nothing would release it.
        if let Some(rule) = self.by_text.get(raw.trim()).filter(|_| raw.is_ascii()) {
            check_usage(raw, rule, usage)?;
            return Ok(rule.clone());
        }
        let rule = parse_rule(raw)?;
        check_usage(raw, &rule, usage)?;
        Ok(self.by_text.entry(rule.text()).or_insert_with(|| Arc::new(rule)).clone())
    }

    /// Takes back a list that is being dropped, forgetting rules no other list uses.
    pub fn release(&mut self, list: RuleList) {
        if let Some(index) = list.index {
            // One reference here, one in the map: this list was the last user.
            if Arc::strong_count(&index) == 2 {
                self.indexes.remove(&list_key(&list.rules));
            }
        }
        for rule in list.rules {
            // One reference here, one in the map: this list was the last user.
            if Arc::strong_count(&rule) == 2 {
                self.by_text.remove(&rule.text());
            }
        }
    }

    /// Distinct rules held (for tests of sharing and release).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.by_text.len()
    }

    /// Distinct rules and long lists' indexes held: when every list taken is released, as
    /// many as the lists held use (for the checks of tests and fuzz targets).
    pub fn held(&self) -> (usize, usize) {
        (self.by_text.len(), self.indexes.len())
    }
}

/// The map key of a long list's index: its normalised texts, one per line.
fn list_key(rules: &[Arc<Rule>]) -> String {
    rules.iter().map(|rule| rule.text()).collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_matches(rule: &str, service: &str, api: &str) -> bool {
        match parse_rule(rule).unwrap() {
            Rule::Api(r) => r.matches(service.as_bytes(), api.as_bytes()),
            _ => panic!("not an API rule"),
        }
    }

    fn error_of(rule: &str) -> Error {
        parse_rule(rule).unwrap_err()
    }

    #[test]
    fn spec_examples_parse_and_match() {
        assert!(api_matches("session:*", "session", "userLogon"));
        assert!(api_matches("session:get*", "session", "getSessionInfo"));
        assert!(!api_matches("session:get*", "session", "userLogon"));
        assert!(api_matches("data:entityBrowseRecords2", "data", "entityBrowseRecords2"));
        assert!(api_matches("admin:keysafeGetKey", "admin", "keysafeGetKey"));
        assert!(api_matches(
            "apps/com.hornbill.servicemanager/Requests:holdRequest",
            "apps/com.hornbill.servicemanager/Requests",
            "holdRequest"
        ));
        assert!(api_matches("apps/com.hornbill.core/*:*", "apps/com.hornbill.core/Achievement", "addAchievement"));
        assert!(!api_matches("apps/com.hornbill.core/*:*", "apps/com.hornbill.core", "addHistory"));
        assert!(api_matches("apps/com.hornbill.core:*", "apps/com.hornbill.core", "addHistory"));
        assert!(!api_matches("apps/com.hornbill.core:*", "apps/com.hornbill.core/Achievement", "addAchievement"));
        assert!(api_matches("*:userLogon", "session", "userLogon"));
        assert!(api_matches("data:entity???Record", "data", "entityAddRecord"));
        assert!(!api_matches("data:entity???Record", "data", "entityBrowseRecords2"));
    }

    #[test]
    fn hornbill_help_examples() {
        assert!(api_matches("session:getSessionInfo", "session", "getSessionInfo"));
        assert!(api_matches("apps/com.hornbill.core/Achievement:*", "apps/com.hornbill.core/Achievement", "addAchievement"));
        assert!(api_matches("apps/com.hornbill.core:addHistory", "apps/com.hornbill.core", "addHistory"));
    }

    #[test]
    fn case_is_ignored_and_trimmed_text_kept() {
        assert!(api_matches("SESSION:USERLOGON", "session", "userlogon"));
        assert_eq!(parse_rule("  session:get*\t").unwrap().text(), "session:get*");
    }

    #[test]
    fn bad_rules_are_named() {
        for (rule, needle) in [
            ("", "empty"),
            ("   ", "empty"),
            ("session", "expected <service>:<api>"),
            ("a:b:c", "exactly one ':'"),
            (":get", "service pattern is empty"),
            ("session:", "api pattern is empty"),
            ("ses sion:get", "' '"),
            ("session:get$", "'$'"),
            ("sessión:get", "'ó'"),
            ("ip=300.1.1.1", "not an IPv4 or IPv6 address"),
            ("ip=10.0.0.0/33", "prefix"),
            ("ip=10.0.0.1/8", "host bits"),
            ("ip=", "not an IPv4 or IPv6 address"),
        ] {
            let err = error_of(rule);
            assert_eq!(err.code, ErrorCode::InvalidRule, "{rule}");
            assert!(err.message.contains(needle), "{rule}: {}", err.message);
        }
        let long = format!("session:{}", "a".repeat(250));
        assert!(error_of(&long).message.contains("longer than 256"));
        assert!(parse_rule(&format!("session:{}", "a".repeat(248))).is_ok());
    }

    /// Finding 1 of issue 10: each of these aborted Node (a byte slice in the middle of a character).
    const HOSTILE: [(&str, &str); 12] = [
        ("éé", "'é' (U+00E9) at position 1"),
        ("a€:b", "U+20AC at position 2"),
        ("КОТ:x", "'К' (U+041A) at position 1"),
        ("😀:x", "U+1F600 at position 1"),
        ("ipé=1", "'é' (U+00E9) at position 3"),
        ("  éé", "'é' (U+00E9) at position 3"),
        ("Grö", "'ö' (U+00F6) at position 3"),
        ("ip=1.2.3.4\u{a0}", "U+00A0 at position 11"),
        ("\u{a0}session:*", "U+00A0 at position 1"),
        ("session:get\u{202e}x", "U+202E at position 12"),
        ("é", "'é' (U+00E9) at position 1"),
        ("ip", "expected <service>:<api>"),
    ];

    #[test]
    fn non_ascii_rules_are_invalid_rules_naming_the_character() {
        for (rule, needle) in HOSTILE {
            let err = error_of(rule);
            assert_eq!(err.code, ErrorCode::InvalidRule, "{rule}");
            assert!(err.message.contains(needle), "{rule}: {}", err.message);
            assert!(!err.message.contains('\u{202e}'), "bidi characters are escaped: {}", err.message);
            assert_eq!(validate_rule(rule).unwrap_err(), err);
            assert_eq!(normalise_list(&[rule], RuleUse::KeyRules).unwrap_err(), err);
            assert_eq!(RuleInterner::default().parse_list(&[rule], RuleUse::KeyRules).unwrap_err(), err);
        }
        // Every prefix length of a multi-byte character around the `ip=` tag.
        for rule in ["é", "éé", "ié", "ip\u{e9}", "i\u{20ac}", "\u{1F600}", "ip=\u{1F600}", "a\u{0301}:b"] {
            assert_eq!(error_of(rule).code, ErrorCode::InvalidRule, "{rule}");
        }
    }

    #[test]
    fn rules_given_as_lines_of_one_text_say_so() {
        for block in [
            "session:*\nadmin:*",
            "ip=10.0.0.0/8\nsession:*",
            "session:*\r\nip=10.0.0.0/8",
            "dav=GET a/*\rsession:*",
            "  session:get*\n\n  data:entityBrowseRecords2\n",
        ] {
            let err = error_of(block);
            assert_eq!(err.code, ErrorCode::InvalidRule, "{block:?}");
            assert!(err.message.contains("holds a line break: give each line as a rule of its own"), "{block:?}: {}", err.message);
        }
        // Line breaks around one rule are whitespace, as ever.
        assert_eq!(validate_rule("\n session:*\r\n").unwrap(), "session:*");
    }

    #[test]
    fn hornbill_operation_names_get_the_rule_meant() {
        for (written, meant) in [
            ("session::userLogon", "session:userLogon"),
            ("session::*", "session:*"),
            ("com.hornbill.servicemanager::Requests/logRequest", "apps/com.hornbill.servicemanager/Requests:logRequest"),
            ("apps/com.hornbill.servicemanager::Requests/logRequest", "apps/com.hornbill.servicemanager/Requests:logRequest"),
            ("com.hornbill.core::addHistory", "apps/com.hornbill.core:addHistory"),
            ("com.hornbill.core::Achievement/addAchievement", "apps/com.hornbill.core/Achievement:addAchievement"),
        ] {
            let err = error_of(written);
            assert_eq!(err.code, ErrorCode::InvalidRule);
            assert!(err.message.contains(&format!("did you mean {meant}?")), "{written}: {}", err.message);
            assert!(parse_rule(meant).is_ok(), "the hint is a valid rule: {meant}");
        }
        for no_hint in ["a:b:c", "a::b::c", "a:b::c", "ses sion::x", "session::", "::x"] {
            let err = error_of(no_hint);
            assert!(!err.message.contains("did you mean"), "{no_hint}: {}", err.message);
        }
    }

    #[test]
    fn rules_holding_a_secret_are_refused_without_showing_it() {
        for prefix in ["kg", "acme", "x", "a1b2c3d4e5f6g7h8"] {
            let secret = crate::secret::generate(&crate::secret::Prefix::new(prefix).unwrap()).unwrap().text;
            for rule in [format!("{secret}:*"), format!("session:{secret}"), format!(" apps/{secret}/x:y ")] {
                let err = validate_rule(&rule).unwrap_err();
                assert_eq!(err.code, ErrorCode::InvalidRule, "{rule}");
                assert!(err.message.contains("looks like a keygate secret"), "{}", err.message);
                let body = secret.split_once('_').unwrap().1;
                assert!(!err.message.contains(body) && !err.message.contains(&body[..20]), "{}", err.message);
                assert_eq!(normalise_list(&["session:*", &rule], RuleUse::Rights).unwrap_err(), err);
                // Rules read back from an older store still load.
                assert!(parse_rule(&rule).is_ok());
            }
        }
        // Shaped like a secret but with a wrong checksum: a (strange) valid rule.
        assert!(validate_rule(&format!("kg_{}:*", "a".repeat(49))).is_ok());
    }

    /// The reason after the quoted rule may quote a part of it (the address, the prefix, the
    /// rule meant): redacted as the rule is, whatever long token it is (here not a secret).
    #[test]
    fn the_reason_of_an_invalid_rule_redacts_what_it_quotes() {
        let token = format!("{}Z", "Ab3".repeat(16));
        for rule in [format!("ip={token}"), format!("ip=10.0.0.0/{token}"), format!("session::{token}"), format!("dav=GET {token}:x")] {
            let err = validate_rule(&rule).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidRule, "{rule}");
            assert!(!err.message.contains(&token[..32]), "{}", err.message);
            assert!(err.message.contains("<redacted>"), "{}", err.message);
        }
    }

    #[test]
    fn ip_rules_normalise() {
        assert_eq!(parse_rule("ip=142.250.200.46").unwrap().text(), "ip=142.250.200.46");
        assert_eq!(parse_rule("IP=142.250.200.0/24").unwrap().text(), "ip=142.250.200.0/24");
        assert_eq!(parse_rule("ip=2001:DB8::/32").unwrap().text(), "ip=2001:db8::/32");
    }

    #[test]
    fn dav_rules_are_told_by_their_tag_in_any_case_and_normalise() {
        for (written, text) in
            [("dav=GET docs/*", "dav=GET docs/*"), (" DAV=propfind /docs/reports/ ", "dav=PROPFIND docs/reports/"), ("Dav=* x", "dav=* x")]
        {
            let rule = parse_rule(written).unwrap();
            assert!(matches!(rule, Rule::Dav(_)), "{written}");
            assert_eq!(rule.text(), text);
            assert_eq!(parse_rule(text).unwrap(), rule, "the normalised text parses back to the same rule");
        }
    }

    #[test]
    fn lists_respect_limits_and_usage() {
        let mut interner = RuleInterner::default();
        let many: Vec<String> = (0..1001).map(|i| format!("s:a{i}")).collect();
        assert_eq!(interner.parse_list(&many, RuleUse::KeyRules).unwrap_err().code, ErrorCode::InvalidRule);
        assert!(interner.parse_list(&many[..1000], RuleUse::KeyRules).is_ok());
        let err = interner.parse_list(&["ip=10.0.0.0/8"], RuleUse::Rights).unwrap_err();
        assert!(err.message.contains("API and WebDAV rules only"));
    }

    /// The first matching API rule by a plain scan in list order (what the index must agree with).
    fn first_by_scan(list: &RuleList, service: &str, api: &str) -> Option<String> {
        list.iter().find_map(|rule| match &**rule {
            Rule::Api(r) if r.matches(service.as_bytes(), api.as_bytes()) => Some(r.text.to_string()),
            _ => None,
        })
    }

    #[test]
    fn long_lists_are_indexed_and_answer_as_the_scan_does() {
        let pool = [
            "svc:get",
            "SVC:GET",
            "svc:get*",
            "svc:*",
            "*:get",
            "svc:g?t",
            "other:get",
            "svc:put",
            "s*:*et",
            "*:*",
            "svc:getx",
            "ip=10.0.0.0/8",
            "apps/x:y",
            "APPS/X:Y",
            "svc:?",
            "svc:get",
            "a:b",
            "svc2:get",
        ];
        let calls = [
            ("svc", "get"),
            ("SVC", "Get"),
            ("svc", "getx"),
            ("other", "get"),
            ("svc", "put"),
            ("x", "y"),
            ("apps/x", "y"),
            ("svc", "g"),
            ("zz", "zz"),
            ("svc2", "get"),
        ];
        let mut interner = RuleInterner::default();
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..400 {
            let len = 1 + (seed % 40) as usize;
            let list: Vec<&str> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    pool[(seed % pool.len() as u64) as usize]
                })
                .collect();
            // A list without `*:*` and without `svc:*` half of the time, so that misses happen.
            let list: Vec<&str> =
                if seed.is_multiple_of(2) { list.into_iter().filter(|r| !r.contains("*:*") && *r != "svc:*").collect() } else { list };
            let compiled = interner.parse_list(&list, RuleUse::KeyRules).unwrap();
            assert_eq!(compiled.index.is_some(), list.len() > INDEX_FROM);
            assert_eq!(compiled.has_api_rules(), list.iter().any(|r| !r.starts_with("ip=")));
            assert_eq!(compiled.has_ip_rules(), list.iter().any(|r| r.starts_with("ip=")));
            for (service, api) in calls {
                let names = CallNames::new(service.as_bytes(), api.as_bytes());
                let indexed = compiled.first_api_match(&names).map(|r| r.text.to_string());
                assert_eq!(indexed, first_by_scan(&compiled, service, api), "{list:?} on {service}:{api}");
            }
            interner.release(compiled);
        }
        assert!(interner.indexes.is_empty(), "released lists leave no index behind");
        assert_eq!(interner.len(), 0);
    }

    #[test]
    fn keys_with_the_same_long_list_share_its_index() {
        let mut interner = RuleInterner::default();
        let rules: Vec<String> = (0..100).map(|n| format!("svc{n}:api{n}")).collect();
        let a = interner.parse_list(&rules, RuleUse::KeyRules).unwrap();
        let b = interner.parse_list(&rules, RuleUse::KeyRules).unwrap();
        assert!(Arc::ptr_eq(a.index.as_ref().unwrap(), b.index.as_ref().unwrap()));
        let names = CallNames::new(b"SVC42", b"api42");
        assert_eq!(a.first_api_match(&names).unwrap().text.as_ref(), "svc42:api42");
        assert!(a.first_api_match(&CallNames::new(b"svc42", b"api43")).is_none());
        interner.release(a);
        assert_eq!(interner.indexes.len(), 1);
        interner.release(b);
        assert!(interner.indexes.is_empty());
    }

    /// Two different long lists held at once: each is indexed by its own rules, and
    /// releasing one leaves the other's index in place.
    #[test]
    fn different_long_lists_held_at_once_keep_their_own_indexes() {
        let mut interner = RuleInterner::default();
        let list = |prefix: &str| -> Vec<String> { (0..=INDEX_FROM).map(|n| format!("{prefix}{n}:get")).collect() };
        let a = interner.parse_list(&list("a"), RuleUse::KeyRules).unwrap();
        let b = interner.parse_list(&list("b"), RuleUse::KeyRules).unwrap();
        assert!(!Arc::ptr_eq(a.index.as_ref().unwrap(), b.index.as_ref().unwrap()));
        let first =
            |list: &RuleList, service: &str| list.first_api_match(&CallNames::new(service.as_bytes(), b"get")).map(|r| r.text.to_string());
        assert_eq!(first(&a, "a3"), Some("a3:get".to_string()));
        assert_eq!(first(&b, "b3"), Some("b3:get".to_string()));
        assert_eq!(first(&b, "a3"), None);
        interner.release(a);
        assert_eq!(interner.indexes.len(), 1, "the released list's index is forgotten, the other's kept");
        assert_eq!(first(&b, "b3"), Some("b3:get".to_string()));
        interner.release(b);
        assert!(interner.indexes.is_empty());
    }

    #[test]
    fn a_non_ascii_rule_is_refused_even_when_its_trimmed_text_is_held() {
        // Rust's trim takes Unicode spaces too: a stored "\u{a0}session:*" must not be
        // looked up as "session:*" (accepted or refused by the order rows are read in).
        let mut interner = RuleInterner::default();
        let held = interner.parse_list(&["session:*"], RuleUse::KeyRules).unwrap();
        for (rule, _) in HOSTILE {
            assert_eq!(interner.parse_list(&[rule], RuleUse::KeyRules).unwrap_err(), error_of(rule), "{rule}");
        }
        for rule in ["\u{a0}session:*", "session:*\u{3000}", "\u{2028}session:*\u{85}"] {
            assert_eq!(interner.parse_list(&[rule], RuleUse::KeyRules).unwrap_err(), error_of(rule), "{rule:?}");
        }
        interner.release(held);
    }

    #[test]
    fn interner_shares_and_releases() {
        let mut interner = RuleInterner::default();
        let a = interner.parse_list(&["session:*", "data:*"], RuleUse::KeyRules).unwrap();
        let b = interner.parse_list(&[" session:* "], RuleUse::KeyRules).unwrap();
        assert_eq!(interner.len(), 2);
        assert!(Arc::ptr_eq(a.iter().next().unwrap(), b.iter().next().unwrap()));
        interner.release(a);
        assert_eq!(interner.len(), 1);
    }
}
