//! Secrets: `<prefix>_<base62 of 32 CSPRNG bytes><6-char base62 CRC32>`.
//! Generated here, shown once, and from then on known only by their SHA-256 digest.

use sha2::{Digest as _, Sha256};

use crate::error::{Error, ErrorCode, Result};

pub const DEFAULT_PREFIX: &str = "kg";
const RANDOM_BYTES: usize = 32;
/// 62^43 > 2^256, so 43 base62 characters hold 32 bytes.
const RANDOM_CHARS: usize = 43;
/// 62^6 > 2^32, so 6 base62 characters hold a CRC32.
const CHECKSUM_CHARS: usize = 6;
const BODY_CHARS: usize = RANDOM_CHARS + CHECKSUM_CHARS;
const MAX_PREFIX_LEN: usize = 16;
/// Characters of a secret after its prefix: `_` and the body.
pub const AFTER_PREFIX_LEN: usize = 1 + BODY_CHARS;
/// Longest well-formed secret: prefix, `_`, body.
pub const MAX_SECRET_LEN: usize = MAX_PREFIX_LEN + AFTER_PREFIX_LEN;

/// Base62 digits of a key id: 16 bytes need 22 (62^22 > 2^128 > 62^21).
pub(crate) const ID_CHARS: usize = 22;
const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// 1 for every byte that is not a base62 digit.
// Indexing in a constant initialiser cannot panic at run time: an index out of
// bounds there fails the build.
#[allow(clippy::indexing_slicing)]
static NOT_BASE62: [u8; 256] = {
    let mut table = [1u8; 256];
    let mut i = 0;
    while i < 62 {
        table[ALPHABET[i] as usize] = 0;
        i += 1;
    }
    table
};

/// 1 when `c` is not a base62 digit. The index of a `u8` is always in the
/// table, so the optimiser drops the bounds check of `get`.
#[inline]
fn not_base62(c: u8) -> u8 {
    NOT_BASE62.get(usize::from(c)).copied().unwrap_or(1)
}

/// A base62 digit's character.
#[inline]
fn base62_char(digit: usize) -> u8 {
    ALPHABET.get(digit).copied().unwrap_or(b'0')
}

fn is_prefix_byte(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

pub type SecretDigest = [u8; 32];

/// The validated `keyPrefix` option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prefix(String);

impl Prefix {
    pub fn new(prefix: &str) -> Result<Prefix> {
        let bytes = prefix.as_bytes();
        let ok =
            bytes.len() <= MAX_PREFIX_LEN && bytes.first().is_some_and(u8::is_ascii_lowercase) && bytes.iter().all(|&b| is_prefix_byte(b));
        if !ok {
            return Err(Error::new(
                ErrorCode::InvalidArgument,
                format!("keyPrefix {} must match [a-z][a-z0-9]{{0,15}}", crate::error::quote(prefix)),
            ));
        }
        Ok(Prefix(prefix.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for Prefix {
    fn default() -> Self {
        Prefix(DEFAULT_PREFIX.to_string())
    }
}

/// A freshly issued secret. It is handed to the caller once and never stored.
pub struct NewSecret {
    pub text: String,
    pub digest: SecretDigest,
    pub hint: [u8; 4],
}

/// Fills `buf` from the operating system's CSPRNG.
pub fn random_bytes(buf: &mut [u8]) -> Result<()> {
    getrandom::fill(buf).map_err(|e| Error::new(ErrorCode::StoreIo, format!("the OS random generator failed: {e}")))
}

/// `N` bytes from the OS CSPRNG as lower-case hex: a random id (a token, a log's id).
pub(crate) fn random_hex<const N: usize>() -> Result<String> {
    let mut raw = [0u8; N];
    random_bytes(&mut raw)?;
    Ok(hex::encode(raw))
}

/// Issues a new secret with `prefix`.
pub fn generate(prefix: &Prefix) -> Result<NewSecret> {
    let mut random = [0u8; RANDOM_BYTES];
    random_bytes(&mut random)?;
    let mut text = String::with_capacity(prefix.0.len() + 1 + BODY_CHARS);
    text.push_str(&prefix.0);
    text.push('_');
    text.push_str(&base62_fixed(&random, RANDOM_CHARS));
    let checksum = crc32fast::hash(text.as_bytes());
    text.push_str(&base62_fixed(&checksum.to_be_bytes(), CHECKSUM_CHARS));
    let digest = digest(text.as_bytes());
    let Some(&hint) = text.as_bytes().last_chunk::<4>() else {
        return Err(Error::new(ErrorCode::Internal, "a generated secret is shorter than its hint"));
    };
    Ok(NewSecret { text, digest, hint })
}

/// SHA-256 of the secret's bytes.
#[inline]
pub fn digest(secret: &[u8]) -> SecretDigest {
    Sha256::digest(secret).into()
}

/// True when `secret` has the shape of a secret issued with `prefix`: right
/// prefix, length and alphabet, and a checksum that matches. No lookup needed.
pub fn is_well_formed(secret: &[u8], prefix: &Prefix) -> bool {
    has_secret_shape(secret, prefix) && checksum_matches(secret)
}

/// The cheap part of [`is_well_formed`]: right prefix, length and alphabet (the
/// checksum is not checked).
pub(crate) fn has_secret_shape(secret: &[u8], prefix: &Prefix) -> bool {
    let Some([b'_', body @ ..]) = secret.strip_prefix(prefix.0.as_bytes()) else {
        return false;
    };
    let Ok(body) = <&[u8; BODY_CHARS]>::try_from(body) else {
        return false;
    };
    // Branch-free over a fixed length, by comparisons rather than a table: the compiler
    // checks many characters at once (a per-character branch would mispredict on random text).
    body.iter().fold(0u8, |bad, &c| bad | u8::from(!c.is_ascii_alphanumeric())) == 0
}

/// True when the last 6 characters of `secret` are the base62 CRC32 of the rest.
pub(crate) fn checksum_matches(secret: &[u8]) -> bool {
    match secret.split_last_chunk::<CHECKSUM_CHARS>() {
        Some((signed, checksum)) => decode_base62_u64(checksum) == Some(u64::from(crc32fast::hash(signed))),
        None => false,
    }
}

/// True when `text` holds the 43 random characters of a secret that `is_key`
/// knows (given the whole secret), whatever surrounds or separates them: the checksum is
/// computable from them, so a secret pasted with its last characters changed,
/// cut short, re-prefixed (`KG_`, `kg-`) or cut by `-`, `.` or an invisible
/// character still gives the whole secret away. Every run of 43 consecutive
/// base62 characters of the text, other characters skipped, is completed into
/// the secret it would be with this store's prefix and looked up. Texts here
/// are short (at most a few KB), so the cost is a hash per character.
pub fn holds_known_secret(text: &[u8], prefix: &Prefix, mut is_key: impl FnMut(&[u8]) -> bool) -> bool {
    let base62: Vec<u8> = text.iter().copied().filter(|&c| not_base62(c) == 0).collect();
    let mut candidate = Vec::with_capacity(prefix.0.len() + 1 + BODY_CHARS);
    base62.windows(RANDOM_CHARS).any(|window| {
        candidate.clear();
        candidate.extend_from_slice(prefix.0.as_bytes());
        candidate.push(b'_');
        candidate.extend_from_slice(window);
        let checksum = crc32fast::hash(&candidate);
        candidate.extend_from_slice(base62_fixed(&checksum.to_be_bytes(), CHECKSUM_CHARS).as_bytes());
        is_key(&candidate)
    })
}

/// Where `text` holds a well-formed secret of any valid prefix (not only the
/// store's: `validateRule` has none), as a byte offset; `None` when it holds none.
///
/// Linear: every secret has a `_` followed by 49 base62 characters, and `_` is
/// not base62, so scanning the characters after each `_` reads each byte once,
/// and at most one `_` per 50 bytes has a full body after it; only those try
/// their (at most 16) possible prefixes against the checksum.
pub fn find_secret(text: &[u8]) -> Option<usize> {
    let mut search_from = 0;
    while let Some(underscore) = text.get(search_from..)?.iter().position(|&b| b == b'_').map(|at| at + search_from) {
        let after = text.get(underscore + 1..)?;
        let base62_run = after.iter().take(BODY_CHARS).take_while(|&&c| not_base62(c) == 0).count();
        if base62_run < BODY_CHARS {
            // The next `_` cannot come before the end of this run.
            search_from = underscore + 1 + base62_run;
            continue;
        }
        let before = text.get(..underscore)?;
        let prefix_run = before.iter().rev().take(MAX_PREFIX_LEN).take_while(|&&b| is_prefix_byte(b)).count();
        for len in 1..=prefix_run {
            let start = underscore - len;
            let candidate = text.get(start..underscore + 1 + BODY_CHARS)?;
            if candidate.first().is_some_and(u8::is_ascii_lowercase) && checksum_matches(candidate) {
                return Some(start);
            }
        }
        search_from = underscore + 1;
    }
    None
}

/// Encodes a big-endian number as exactly `width` base62 digits (left-padded with '0').
fn base62_fixed(bytes: &[u8], width: usize) -> String {
    let mut number = bytes.to_vec();
    let mut digits = vec![b'0'; width];
    for slot in digits.iter_mut().rev() {
        let mut remainder = 0u32;
        for byte in number.iter_mut() {
            let acc = (remainder << 8) | *byte as u32;
            *byte = (acc / 62) as u8;
            remainder = acc % 62;
        }
        *slot = base62_char(remainder as usize);
    }
    debug_assert!(number.iter().all(|&b| b == 0), "width too small for the number");
    digits.into_iter().map(char::from).collect()
}

fn decode_base62_u64(text: &[u8]) -> Option<u64> {
    text.iter().try_fold(0u64, |acc, &c| {
        let digit = match c {
            b'0'..=b'9' => c - b'0',
            b'A'..=b'Z' => c - b'A' + 10,
            b'a'..=b'z' => c - b'a' + 36,
            _ => return None,
        };
        acc.checked_mul(62)?.checked_add(digit as u64)
    })
}

/// Encodes 16 bytes as 22 base62 digits (a key id's text after its prefix).
/// Listings encode every key's id, so this works in u64 chunks of ten digits
/// instead of the byte-wise long division of `base62_fixed`.
pub(crate) fn encode_id(bytes: &[u8; 16]) -> [u8; ID_CHARS] {
    const CHUNK: u128 = 62u128.pow(10);
    let mut n = u128::from_be_bytes(*bytes);
    let mut digits = [b'0'; ID_CHARS];
    // Ten digits per chunk from the right: 12..22, 2..12, then the top two.
    for chunk in digits.rchunks_mut(10) {
        let mut part = (n % CHUNK) as u64;
        n /= CHUNK;
        for slot in chunk.iter_mut().rev() {
            *slot = base62_char((part % 62) as usize);
            part /= 62;
        }
    }
    digits
}

/// Decodes 22 base62 digits written by [`encode_id`]; `None` for anything else.
pub(crate) fn decode_id(digits: &[u8]) -> Option<[u8; 16]> {
    if digits.len() != ID_CHARS {
        return None;
    }
    let mut value: u128 = 0;
    for &c in digits {
        let digit = decode_base62_u64(&[c])? as u128;
        value = value.checked_mul(62)?.checked_add(digit)?;
    }
    Some(value.to_be_bytes())
}

#[cfg(test)]
mod tests {
    #[test]
    fn known_secrets_are_found_however_mangled() {
        let prefix = Prefix::default();
        let issued = generate(&prefix).unwrap();
        let known = |candidate: &[u8]| digest(candidate) == issued.digest;
        let text = issued.text.as_str();
        let body = &text[3..46];
        assert!(holds_known_secret(text.as_bytes(), &prefix, known));
        assert!(holds_known_secret(format!("x{body}Q").as_bytes(), &prefix, known), "checksum changed");
        assert!(holds_known_secret(format!("id.{body}").as_bytes(), &prefix, known), "no prefix");
        assert!(!holds_known_secret(&text.as_bytes()[..45], &prefix, known), "42 random characters are not enough");
        let (head, tail) = body.split_at(20);
        for cut in [format!("{head}-{tail}"), format!("KG_{head}.{tail}"), format!("{head}\u{200b}{tail}"), format!("{head}\u{ad}{tail}x")]
        {
            assert!(holds_known_secret(cut.as_bytes(), &prefix, known), "{cut}");
        }
        assert!(!holds_known_secret(generate(&prefix).unwrap().text.as_bytes(), &prefix, known), "another secret");
    }

    use super::*;

    #[test]
    fn random_ids_are_hex_of_the_asked_length_and_differ() {
        let (a, b) = (random_hex::<16>().unwrap(), random_hex::<16>().unwrap());
        assert_eq!((a.len(), random_hex::<8>().unwrap().len()), (32, 16));
        assert!(a.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)), "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn a_secret_s_shape_admits_base62_characters_only_and_the_right_length() {
        let prefix = Prefix::default();
        let secret = generate(&prefix).unwrap().text.into_bytes();
        assert!(has_secret_shape(&secret, &prefix));
        let body_start = prefix.0.len() + 1;
        for at in [body_start, body_start + 17, secret.len() - 1] {
            for byte in 0..=255u8 {
                let mut changed = secret.clone();
                changed[at] = byte;
                assert_eq!(has_secret_shape(&changed, &prefix), ALPHABET.contains(&byte), "byte {byte} at {at}");
            }
        }
        // Two bad characters are as bad as one: none cancels another out.
        for bad in [b'-', b'_', b'.', 0, 0xFF] {
            let mut changed = secret.clone();
            changed[body_start] = bad;
            changed[body_start + 17] = bad;
            assert!(!has_secret_shape(&changed, &prefix), "byte {bad} twice");
        }
        assert!(!has_secret_shape(&secret[..secret.len() - 1], &prefix));
        assert!(!has_secret_shape(&[secret.as_slice(), b"0"].concat(), &prefix));
        assert!(!has_secret_shape(&secret[1..], &prefix));
    }

    #[test]
    fn generated_secrets_are_well_formed_and_distinct() {
        let prefix = Prefix::default();
        let a = generate(&prefix).unwrap();
        let b = generate(&prefix).unwrap();
        assert_ne!(a.text, b.text);
        assert_eq!(a.text.len(), 2 + 1 + 43 + 6);
        assert!(a.text.starts_with("kg_"));
        assert!(is_well_formed(a.text.as_bytes(), &prefix));
        assert_eq!(a.digest, digest(a.text.as_bytes()));
        assert_eq!(&a.hint, &a.text.as_bytes()[a.text.len() - 4..]);
    }

    #[test]
    fn any_single_change_breaks_the_checksum() {
        let prefix = Prefix::default();
        let secret = generate(&prefix).unwrap().text.into_bytes();
        for i in 3..secret.len() {
            let mut bad = secret.clone();
            bad[i] = if bad[i] == b'a' { b'b' } else { b'a' };
            assert!(!is_well_formed(&bad, &prefix), "position {i}");
        }
        assert!(!is_well_formed(&secret[..secret.len() - 1], &prefix));
        assert!(!is_well_formed(b"", &prefix));
        let other = Prefix::new("acme").unwrap();
        assert!(!is_well_formed(&secret, &other));
        let acme = generate(&other).unwrap();
        assert!(acme.text.starts_with("acme_"));
        assert!(is_well_formed(acme.text.as_bytes(), &other));
    }

    #[test]
    fn secrets_of_any_prefix_are_found_anywhere() {
        for prefix in ["kg", "x", "acme", "k9", "a1b2c3d4e5f6g7h8"] {
            let secret = generate(&Prefix::new(prefix).unwrap()).unwrap().text;
            for (text, at) in [
                (secret.clone(), 0),
                (format!("user.{secret}"), 5),
                (format!("{secret}:*"), 0),
                (format!("x_y__{secret}zz"), 5),
                // The longest run before the `_` is not a prefix; its tail is.
                (format!("Z{secret}"), 1),
                (format!("é{secret}"), 2),
            ] {
                assert_eq!(find_secret(text.as_bytes()), Some(at), "{text}");
            }
            let mut broken = secret.clone().into_bytes();
            if let Some(last) = broken.last_mut() {
                *last = if *last == b'a' { b'b' } else { b'a' };
            }
            assert_eq!(find_secret(&broken), None);
            assert_eq!(find_secret(&secret.as_bytes()[..secret.len() - 1]), None);
            assert_eq!(find_secret(secret.to_uppercase().as_bytes()), None);
        }
        // A 17-character run before the `_`: only its last 16 can be a prefix.
        let long = generate(&Prefix::new("abcdefghijklmnop").unwrap()).unwrap().text;
        assert_eq!(find_secret(format!("q{long}").as_bytes()), Some(1));
        let no_prefix = generate(&Prefix::default()).unwrap().text.replacen("kg", "", 1);
        assert_eq!(find_secret(no_prefix.as_bytes()), None);
        for text in ["", "_", "kg_", "a_b_c", &"_".repeat(500), &format!("kg_{}", "a".repeat(49))] {
            assert_eq!(find_secret(text.as_bytes()), None, "{text}");
        }
    }

    #[test]
    fn finding_secrets_is_linear() {
        // Worst cases: a `_` before every full base62 run, and long prefix runs.
        let body = "A".repeat(49);
        let dense = format!("{}_{body}", "a".repeat(16)).repeat(5_000);
        let underscores = "a_".repeat(200_000);
        let started = std::time::Instant::now();
        assert_eq!(find_secret(dense.as_bytes()), None);
        assert_eq!(find_secret(underscores.as_bytes()), None);
        // Quadratic scanning would read over a billion bytes here.
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "{:?}", started.elapsed());
    }

    #[test]
    fn prefixes_are_validated() {
        for bad in ["", "Kg", "1kg", "k_g", "abcdefghijklmnopq", "kg-"] {
            assert_eq!(Prefix::new(bad).unwrap_err().code, ErrorCode::InvalidArgument, "{bad}");
        }
        assert!(Prefix::new("abcdefghijklmnop").is_ok());
        assert!(Prefix::new("k9").is_ok());
    }

    #[test]
    fn chunked_id_encoding_matches_long_division() {
        let mut bytes = [0u8; 16];
        for seed in 0..2000u32 {
            for (i, b) in bytes.iter_mut().enumerate() {
                *b = (seed.wrapping_mul(2654435761).rotate_left(i as u32 * 3) >> (i % 4 * 8)) as u8;
            }
            assert_eq!(encode_id(&bytes).as_slice(), base62_fixed(&bytes, 22).as_bytes());
        }
        assert_eq!(encode_id(&[0xff; 16]).as_slice(), base62_fixed(&[0xff; 16], 22).as_bytes());
    }

    #[test]
    fn base62_round_trips_ids() {
        for bytes in [[0xffu8; 16], [0; 16]] {
            assert_eq!(decode_id(&encode_id(&bytes)), Some(bytes));
        }
        assert_eq!(decode_id(b"short"), None);
        assert_eq!(decode_id(&[b'-'; 22]), None);
        let too_big = [b'z'; 22];
        assert_eq!(decode_id(&too_big), None, "62^22 > 2^128");
    }
}
