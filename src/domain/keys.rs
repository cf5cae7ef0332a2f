//! Secrets mailroom hands out — API keys, dashboard session tokens, the server
//! secret — and how they are kept. Keys are long random strings, so a single
//! SHA-256 is the right hash (no password stretching needed); only hashes are
//! stored.

use sha2::{Digest, Sha256};

/// The stored form of a key: hex SHA-256.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// A new random key: `prefix` + 40 base62 characters (about 238 bits).
pub fn generate_key(prefix: &str) -> String {
    use rand::distributions::{Alphanumeric, DistString};
    format!("{prefix}{}", Alphanumeric.sample_string(&mut rand::thread_rng(), 40))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_long_random_and_prefixed() {
        let a = generate_key("mr_");
        let b = generate_key("mr_");
        assert!(a.starts_with("mr_") && a.len() == 43);
        assert_ne!(a, b);
        assert_eq!(hash_key(&a).len(), 64);
    }
}
