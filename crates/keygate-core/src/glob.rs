//! DOS-style wildcard patterns (`*` = any run, `?` = exactly one character),
//! anchored and ASCII case-insensitive, compiled once into the cheapest matcher
//! that gives the same answers as the general algorithm.

/// Characters allowed in service and API names (and in patterns, besides wildcards).
pub fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'/')
}

/// Longest service or API name a request may carry.
pub const MAX_NAME_LEN: usize = 256;

/// True when `name` is a valid service or API name: 1–256 name characters, no wildcards.
pub fn is_valid_name(name: &[u8]) -> bool {
    !name.is_empty() && name.len() <= MAX_NAME_LEN && name.iter().all(|&b| is_name_byte(b))
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Shape {
    /// `*`, `**`, …: every name.
    Any,
    /// No wildcard: equal, ignoring ASCII case.
    Exact(Box<[u8]>),
    /// `literal*`
    Prefix(Box<[u8]>),
    /// `*literal`
    Suffix(Box<[u8]>),
    /// Anything else, matched by the general algorithm over the lower-cased pattern.
    General(Box<[u8]>),
}

/// One compiled pattern. Patterns are stored lower-cased; names are folded while matching.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    shape: Shape,
}

impl Glob {
    /// Compiles a pattern already checked to hold only name characters and wildcards.
    pub fn compile(pattern: &str) -> Glob {
        let lower: Vec<u8> = pattern.bytes().map(|b| b.to_ascii_lowercase()).collect();
        let stars = lower.iter().filter(|&&b| b == b'*').count();
        let has_question = lower.contains(&b'?');
        let one_star = stars == 1 && !has_question;
        let shape = if stars == lower.len() && stars > 0 {
            Shape::Any
        } else if stars == 0 && !has_question {
            Shape::Exact(lower.into())
        } else if let (true, Some((b'*', literal))) = (one_star, lower.split_last()) {
            Shape::Prefix(literal.into())
        } else if let (true, Some((b'*', literal))) = (one_star, lower.split_first()) {
            Shape::Suffix(literal.into())
        } else {
            Shape::General(lower.into())
        };
        Glob { shape }
    }

    /// True when the whole of `name` matches the pattern.
    #[inline]
    pub fn matches(&self, name: &[u8]) -> bool {
        match &self.shape {
            Shape::Any => true,
            Shape::Exact(p) => name.eq_ignore_ascii_case(p),
            Shape::Prefix(p) => name.get(..p.len()).is_some_and(|head| head.eq_ignore_ascii_case(p)),
            Shape::Suffix(s) => {
                name.len().checked_sub(s.len()).and_then(|start| name.get(start..)).is_some_and(|tail| tail.eq_ignore_ascii_case(s))
            }
            Shape::General(p) => general_match(p, name),
        }
    }
}

/// Iterative wildcard match with a single backtrack point (the last `*`):
/// linear in practice, O(pattern × name) at worst, no recursion.
fn general_match(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while let Some(&c) = name.get(n) {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, n));
                p += 1;
                continue;
            }
            Some(b'?') => {
                p += 1;
                n += 1;
                continue;
            }
            Some(&literal) if literal == c.to_ascii_lowercase() => {
                p += 1;
                n += 1;
                continue;
            }
            _ => {}
        }
        match star {
            Some((sp, sn)) => {
                p = sp + 1;
                n = sn + 1;
                star = Some((sp, sn + 1));
            }
            None => return false,
        }
    }
    pattern.get(p..).is_some_and(|rest| rest.iter().all(|&b| b == b'*'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, name: &str) -> bool {
        Glob::compile(pattern).matches(name.as_bytes())
    }

    #[test]
    fn star_matches_any_run_including_nothing() {
        assert!(m("get*", "get"));
        assert!(m("get*", "getSessionInfo"));
        assert!(m("*Info", "Info"));
        assert!(m("*", "x"));
        assert!(m("a*b*c", "abc"));
        assert!(m("a*b*c", "aXXbYYc"));
        assert!(!m("a*b*c", "aXXbYY"));
        assert!(m("**", "anything"));
    }

    #[test]
    fn question_matches_exactly_one() {
        assert!(m("entity???Record", "entityAddRecord"));
        assert!(!m("entity???Record", "entityAdRecord"));
        assert!(!m("entity???Record", "entityAddsRecord"));
        assert!(!m("?", ""));
        assert!(m("?", "a"));
        assert!(!m("?", "ab"));
    }

    #[test]
    fn matching_is_anchored_and_case_insensitive() {
        assert!(m("session", "SESSION"));
        assert!(!m("session", "sessions"));
        assert!(!m("session", "xsession"));
        assert!(m("GET*", "getSessionInfo"));
        assert!(m("*INFO", "getSessionInfo"));
        assert!(m("g?T*", "GetX"));
    }

    #[test]
    fn names_are_validated() {
        assert!(is_valid_name(b"apps/com.hornbill.core"));
        assert!(is_valid_name(b"entityBrowseRecords2"));
        assert!(!is_valid_name(b""));
        assert!(!is_valid_name(b"a*"));
        assert!(!is_valid_name(b"a?"));
        assert!(!is_valid_name(b"a:b"));
        assert!(!is_valid_name(b"caf\xc3\xa9"));
        assert!(!is_valid_name(&[b'a'; 257]));
        assert!(is_valid_name(&[b'a'; 256]));
    }
}
