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

/// The rule syntax's glob over raw bytes, by dynamic programming over (pattern prefix, name
/// prefix): `*` any run of bytes, `?` exactly one byte, any other byte itself ignoring ASCII
/// case (bytes from 0x80 up, and NUL, only themselves). Linear in memory, O(pattern × name).
pub fn glob(pattern: &[u8], name: &[u8]) -> bool {
    // row[j]: the pattern read so far matches name[..j].
    let mut row = vec![false; name.len() + 1];
    row[0] = true;
    for &p in pattern {
        let mut next = vec![false; name.len() + 1];
        if p == b'*' {
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
