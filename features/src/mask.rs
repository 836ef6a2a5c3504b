//! PII masking at ingest: client addresses, author e-mails and tokens become keyed hashes.
//!
//! The key is the store's (`Store::mask_key`): the same address masks to the same id across runs
//! and sources of one store, and nobody without the key can reverse it by hashing candidates.

use std::sync::LazyLock;

use regex::Regex;

/// Keyed hashing of personal data.
#[derive(Clone)]
pub struct Masker {
    key: [u8; 32],
}

impl std::fmt::Debug for Masker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Masker { key: <redacted> }")
    }
}

static IPV4: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b(?:\d{1,3}\.){3}\d{1,3}\b").expect("static regex"));
static IPV6: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)[0-9a-f]*:[0-9a-f:]*:[0-9a-f]*").expect("static regex"));
static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+").expect("static regex")
});

impl Masker {
    pub fn new(key: [u8; 32]) -> Self {
        Masker { key }
    }

    /// 16 hex digits of the keyed BLAKE3 hash of `value`.
    pub fn mask(&self, value: &str) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let h = blake3::keyed_hash(&self.key, value.as_bytes());
        let mut out = String::with_capacity(16);
        for &b in &h.as_bytes()[..8] {
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 15) as usize] as char);
        }
        out
    }

    /// Replaces IPv4 and IPv6 addresses and e-mail addresses in free text with masked ids
    /// (`ip:<id>`, `email:<id>`). Used for reject lines and commit messages.
    pub fn mask_text(&self, text: &str) -> String {
        let t = EMAIL.replace_all(text, |c: &regex::Captures<'_>| format!("email:{}", self.mask(&c[0])));
        let t = IPV4.replace_all(&t, |c: &regex::Captures<'_>| format!("ip:{}", self.mask(&c[0])));
        let t = IPV6.replace_all(&t, |c: &regex::Captures<'_>| {
            // Times such as 10:22:33 look like IPv6 groups; only mask what parses as an address.
            if c[0].parse::<std::net::Ipv6Addr>().is_ok() {
                format!("ip:{}", self.mask(&c[0]))
            } else {
                c[0].to_string()
            }
        });
        t.into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masking_is_keyed_and_stable() {
        let a = Masker::new([1; 32]);
        let b = Masker::new([2; 32]);
        assert_eq!(a.mask("10.0.0.1"), a.mask("10.0.0.1"));
        assert_ne!(a.mask("10.0.0.1"), b.mask("10.0.0.1"));
        assert_eq!(a.mask("x").len(), 16);
    }

    #[test]
    fn free_text_loses_addresses_but_keeps_times() {
        let m = Masker::new([7; 32]);
        let t = m.mask_text("203.0.113.9 - - [10/Oct/2000:13:55:36 -0700] from 2001:db8::1 by bob@example.com");
        assert!(!t.contains("203.0.113.9"), "{t}");
        assert!(!t.contains("2001:db8::1"), "{t}");
        assert!(!t.contains("bob@example.com"), "{t}");
        assert!(t.contains("13:55:36"), "{t}");
    }
}
