//! WebDAV rules `dav=<method> <path>` and the WebDAV requests they decide.
//!
//! Choices beyond the contract (the README documents them):
//! - a rule is `dav=`, a method (letters, or `*`), exactly one space, a path pattern;
//!   the method is stored upper-case, the path as written (matching ignores ASCII case);
//! - one leading `/` of a rule's path or a request's path is ignored (`dav=GET /docs/*`
//!   is stored `dav=GET docs/*`);
//! - a request path ending in `/` names a collection and is valid (`docs/`); a path
//!   whose segments are empty elsewhere (`a//b`) or are `.` or `..` is an invalid
//!   request — checked as given, never normalised. A rule pattern with such a
//!   literal segment could never match a valid request and is refused.

use crate::error::Result;
use crate::glob::{FoldedName, Glob};
use crate::rule::invalid;

/// Longest request path (after its leading `/`, if any).
pub const MAX_DAV_PATH_LEN: usize = 1024;
/// Longest request or rule method.
pub const MAX_DAV_METHOD_LEN: usize = 32;

/// Characters of a WebDAV path (and of a path pattern, besides wildcards).
pub fn is_path_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'/' | b'~')
}

/// A compiled WebDAV rule; `text` is the normalised rule as shown to users.
#[derive(Debug, PartialEq, Eq)]
pub struct DavRule {
    pub text: Box<str>,
    /// Upper-case; `None` for `*` (any method).
    method: Option<Box<[u8]>>,
    path: Glob,
}

impl DavRule {
    /// Parses the part after `dav=` of `rule` (the whole trimmed rule, for messages).
    pub fn parse(rule: &str, body: &str) -> Result<DavRule> {
        let invalid = |why: &dyn std::fmt::Display| invalid(rule, why);
        let Some((method, path)) = body.split_once(' ') else {
            return Err(invalid(&"expected dav=<method> <path>, one space between method and path (e.g. dav=GET docs/*)"));
        };
        if method.is_empty() || path.starts_with(' ') {
            return Err(invalid(&"expected dav=<method> <path> with exactly one space between method and path"));
        }
        let method = if method == "*" {
            None
        } else {
            if let Some(bad) = method.chars().find(|c| !c.is_ascii_alphabetic()) {
                return Err(invalid(&format_args!("{bad:?} is not allowed in the method (a method is letters only, or *)")));
            }
            if method.len() > MAX_DAV_METHOD_LEN {
                return Err(invalid(&format_args!("the method is longer than {MAX_DAV_METHOD_LEN} letters")));
            }
            Some(method.to_ascii_uppercase().into_bytes().into_boxed_slice())
        };
        let path = path.strip_prefix('/').unwrap_or(path);
        check_path_pattern(path).map_err(|why| invalid(&why))?;
        let shown_method = method.as_deref().map_or("*".into(), String::from_utf8_lossy);
        let text = format!("dav={shown_method} {path}");
        Ok(DavRule { text: text.into(), method, path: Glob::compile(path) })
    }

    /// True when the rule matches the request.
    #[inline]
    pub fn matches(&self, request: &DavNames) -> bool {
        self.method.as_deref().is_none_or(|method| method == request.method.as_slice()) && self.path.matches_folded(&request.path)
    }
}

fn check_path_pattern(path: &str) -> std::result::Result<(), String> {
    if path.is_empty() {
        return Err("the path pattern is empty".into());
    }
    if let Some(bad) = path.chars().find(|&c| !(c == '*' || c == '?' || (c.is_ascii() && is_path_byte(c as u8)))) {
        return Err(format!("{bad:?} is not allowed in the path pattern (allowed: A-Z a-z 0-9 _ - . / ~ and the wildcards * ?)"));
    }
    let segments: Vec<&str> = path.split('/').collect();
    let inner = segments.len().saturating_sub(1);
    for (at, segment) in segments.iter().enumerate() {
        if segment.is_empty() && at < inner {
            return Err("the path pattern has an empty segment (//), which no valid request path has".into());
        }
        if *segment == "." || *segment == ".." {
            return Err(format!("the path pattern has a {segment:?} segment, which no valid request path has"));
        }
    }
    Ok(())
}

/// Step 3 of the decision for a WebDAV request: a method of 1–32 letters (any
/// case) and a valid path ([`is_valid_path`]).
pub fn is_valid_request(method: &[u8], path: &[u8]) -> bool {
    let valid_method = !method.is_empty() && method.len() <= MAX_DAV_METHOD_LEN && method.iter().all(u8::is_ascii_alphabetic);
    valid_method && is_valid_path(path)
}

/// True when `path` is a valid request path: after one leading `/`, 1–1,024
/// path characters without wildcards, no empty segment but a last one (a
/// trailing `/`), and no `.` or `..` segment.
pub fn is_valid_path(path: &[u8]) -> bool {
    let path = path.strip_prefix(b"/").unwrap_or(path);
    if path.is_empty() || path.len() > MAX_DAV_PATH_LEN || !path.iter().all(|&b| is_path_byte(b)) {
        return false;
    }
    let mut segments = path.split(|&b| b == b'/').peekable();
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        if (segment.is_empty() && !last) || segment == b"." || segment == b".." {
            return false;
        }
    }
    true
}

/// A request's method (upper-cased) and path (folded, without its leading `/`),
/// prepared once for every rule list it is matched against.
#[derive(Debug, Clone)]
pub struct DavNames {
    method: Vec<u8>,
    path: FoldedName,
}

impl DavNames {
    pub fn new(method: &[u8], path: &[u8]) -> DavNames {
        let path = path.strip_prefix(b"/").unwrap_or(path);
        DavNames { method: method.to_ascii_uppercase(), path: FoldedName::new(path) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(text: &str) -> DavRule {
        let body = text.strip_prefix("dav=").unwrap();
        DavRule::parse(text, body).unwrap()
    }

    fn error(text: &str) -> String {
        let body = text.strip_prefix("dav=").unwrap();
        DavRule::parse(text, body).unwrap_err().message
    }

    fn matches(text: &str, method: &str, path: &str) -> bool {
        assert!(is_valid_path(path.as_bytes()), "{path}");
        rule(text).matches(&DavNames::new(method.as_bytes(), path.as_bytes()))
    }

    #[test]
    fn rules_normalise_method_case_and_leading_slash_and_keep_path_case() {
        assert_eq!(&*rule("dav=get /Session/*").text, "dav=GET Session/*");
        assert_eq!(&*rule("dav=* docs/a?c").text, "dav=* docs/a?c");
        assert_eq!(&*rule("dav=PROPFIND ~user/").text, "dav=PROPFIND ~user/");
    }

    #[test]
    fn paths_match_anchored_case_insensitively_with_star_across_slashes() {
        assert!(matches("dav=GET session/*", "GET", "session/a/b/c"));
        assert!(matches("dav=GET session/*", "get", "/SESSION/x"));
        assert!(matches("dav=GET session/*", "GET", "session/"));
        assert!(!matches("dav=GET session/*", "GET", "session"));
        assert!(!matches("dav=GET session/*", "PUT", "session/x"));
        assert!(!matches("dav=GET session/*", "GET", "xsession/x"));
        assert!(matches("dav=* session/?", "MKCOL", "session/x"));
        assert!(!matches("dav=* session/?", "MKCOL", "session/xy"));
        assert!(matches("dav=GET /a.txt", "GET", "a.txt"));
        assert!(!matches("dav=GET a.txt", "GET", "a.txt/b"));
    }

    #[test]
    fn bad_rules_say_what_is_wrong() {
        for (text, needle) in [
            ("dav=GET", "one space"),
            ("dav=", "one space"),
            ("dav= docs", "exactly one space"),
            ("dav=GET  docs", "exactly one space"),
            ("dav=GET\tdocs", "one space"),
            ("dav=G3T docs", "'3' is not allowed in the method"),
            ("dav=GET docs/x y", "' ' is not allowed in the path"),
            ("dav=GET docs%2Fx", "'%' is not allowed in the path"),
            ("dav=GET /", "path pattern is empty"),
            ("dav=GET docs//x", "empty segment"),
            ("dav=GET //docs", "empty segment"),
            ("dav=GET docs/../x", "\"..\" segment"),
            ("dav=GET ./x", "\".\" segment"),
            ("dav=GET docs:x", "':'"),
        ] {
            let message = error(text);
            assert!(message.contains(needle), "{text}: {message}");
        }
        assert!(error(&format!("dav={} x", "A".repeat(33))).contains("longer than 32"));
        assert!(DavRule::parse("x", &format!("{} x", "A".repeat(32))).is_ok());
    }

    #[test]
    fn request_paths_are_checked_as_given() {
        for valid in ["a", "/a", "a/b", "a/b/", "~u/x.txt", "a/.x", "a/..x", "a/...", &"a".repeat(1024), &format!("/{}", "a".repeat(1024))]
        {
            assert!(is_valid_path(valid.as_bytes()), "{valid}");
        }
        for invalid in [
            "",
            "/",
            "//",
            "//a",
            "a//b",
            "docs/../secret",
            "docs/./x",
            "..",
            ".",
            "a/..",
            "a/*",
            "a?",
            "a%2Fb",
            "a b",
            "a\0",
            "caf\u{e9}",
            &"a".repeat(1025),
        ] {
            assert!(!is_valid_path(invalid.as_bytes()), "{invalid}");
        }
        assert!(is_valid_request(b"propfind", b"a"));
        assert!(is_valid_request(&[b'A'; 32], b"a"));
        for method in [&b""[..], b"G3T", b"GET ", b"*", &[b'A'; 33], b"M\xc3\xa9"] {
            assert!(!is_valid_request(method, b"a"), "{method:?}");
        }
    }
}
