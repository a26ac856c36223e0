//! The rule syntax's own description of a pattern, as the property tests' reference.

/// The pattern as an anchored, ASCII case-insensitive regex over bytes: `*` any
/// run of bytes, `?` exactly one, every other character itself.
pub fn pattern_regex(pattern: &str) -> regex::bytes::Regex {
    let mut re = String::from("(?is-u)^");
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
