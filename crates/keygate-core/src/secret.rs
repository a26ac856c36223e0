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
/// Longest well-formed secret: prefix, `_`, body.
pub const MAX_SECRET_LEN: usize = MAX_PREFIX_LEN + 1 + BODY_CHARS;

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// 1 for every byte that is not a base62 digit.
static NOT_BASE62: [u8; 256] = {
    let mut table = [1u8; 256];
    let mut i = 0;
    while i < 62 {
        table[ALPHABET[i] as usize] = 0;
        i += 1;
    }
    table
};

pub type SecretDigest = [u8; 32];

/// The validated `keyPrefix` option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prefix(String);

impl Prefix {
    pub fn new(prefix: &str) -> Result<Prefix> {
        let bytes = prefix.as_bytes();
        let ok = !bytes.is_empty()
            && bytes.len() <= MAX_PREFIX_LEN
            && bytes[0].is_ascii_lowercase()
            && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
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
    getrandom::fill(buf)
        .map_err(|e| Error::new(ErrorCode::StoreIo, format!("the OS random generator failed: {e}")))
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
    let tail = &text.as_bytes()[text.len() - 4..];
    let hint = [tail[0], tail[1], tail[2], tail[3]];
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
    let p = prefix.0.as_bytes();
    if secret.len() != p.len() + 1 + BODY_CHARS || &secret[..p.len()] != p || secret[p.len()] != b'_' {
        return false;
    }
    // Branch-free: random base62 characters would make a per-character branch mispredict.
    let body = &secret[p.len() + 1..];
    if body.iter().fold(0u8, |bad, &c| bad | NOT_BASE62[c as usize]) != 0 {
        return false;
    }
    let (signed, checksum) = secret.split_at(secret.len() - CHECKSUM_CHARS);
    let expected = crc32fast::hash(signed);
    decode_base62_u64(checksum) == Some(expected as u64)
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
        *slot = ALPHABET[remainder as usize];
    }
    debug_assert!(number.iter().all(|&b| b == 0), "width too small for the number");
    String::from_utf8(digits).expect("base62 digits are ASCII")
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

/// Encodes 16 random bytes as a public identifier: `key_` + 22 base62 chars.
/// Listings encode every key's id, so this works in u64 chunks of ten digits
/// instead of the byte-wise long division of [`base62_fixed`].
pub fn encode_id(prefix: &str, bytes: &[u8; 16]) -> String {
    const CHUNK: u128 = 62u128.pow(10);
    let mut n = u128::from_be_bytes(*bytes);
    let mut digits = [b'0'; 22];
    for end in [22usize, 12, 2] {
        let mut part = (n % CHUNK) as u64;
        n /= CHUNK;
        for slot in digits[end.saturating_sub(10)..end].iter_mut().rev() {
            *slot = ALPHABET[(part % 62) as usize];
            part /= 62;
        }
    }
    let mut id = String::with_capacity(prefix.len() + 22);
    id.push_str(prefix);
    id.push_str(std::str::from_utf8(&digits).expect("base62 digits are ASCII"));
    id
}

/// Decodes an identifier written by [`encode_id`]; `None` for anything else.
pub fn decode_id(prefix: &str, text: &str) -> Option<[u8; 16]> {
    let digits = text.strip_prefix(prefix)?.as_bytes();
    if digits.len() != 22 {
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
    use super::*;

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
            assert_eq!(encode_id("key_", &bytes), format!("key_{}", base62_fixed(&bytes, 22)));
        }
        assert_eq!(encode_id("", &[0xff; 16]), base62_fixed(&[0xff; 16], 22));
    }

    #[test]
    fn base62_round_trips_ids() {
        let bytes = [0xffu8; 16];
        let id = encode_id("key_", &bytes);
        assert_eq!(id.len(), 26);
        assert_eq!(decode_id("key_", &id), Some(bytes));
        let zero = encode_id("key_", &[0; 16]);
        assert_eq!(decode_id("key_", &zero), Some([0; 16]));
        assert_eq!(decode_id("key_", "key_short"), None);
        assert_eq!(decode_id("key_", &id.replace("key_", "kex_")), None);
    }
}
