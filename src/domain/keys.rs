//! Secrets mailroom hands out — API keys, dashboard session tokens, the server
//! secret — and how they are kept. Keys are long random strings, so a single
//! SHA-256 is the right hash (no password stretching needed); only hashes are
//! stored.

use hmac::{Hmac, Mac};
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

/// Separates this use of the server secret from its others (unsubscribe tokens).
const ERASED_ADDRESS_CONTEXT: &[u8] = b"mailroom/erased-address/v1\0";

/// What stays of an erased person's address (GDPR art. 17): hex
/// HMAC-SHA256 under the server's secret of the tenant and the normalized
/// address. Keyed, so the list of erased addresses cannot be walked with a
/// dictionary of addresses by whoever reads the database; per tenant, so one
/// tenant's erasure cannot be matched against another's.
pub fn address_hash(secret: &[u8], tenant_id: &str, email_normalized: &str) -> String {
    // HMAC takes keys of any length: this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
    mac.update(ERASED_ADDRESS_CONTEXT);
    mac.update(tenant_id.as_bytes());
    mac.update(b"\0");
    mac.update(email_normalized.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// The address an erased person's messages and events show instead of
/// theirs: the keyed hash at a reserved domain (RFC 2606 `.invalid`), so
/// that whatever reads a recipient still reads an address, and none that
/// could ever be delivered.
pub fn erased_address(hash: &str) -> String {
    format!("{}{ERASED_DOMAIN}", &hash[..hash.len().min(64)])
}

/// The domain of [`erased_address`], with its `@`.
const ERASED_DOMAIN: &str = "@erased.invalid";

/// Whether a recipient is an erased person's (see [`erased_address`]).
pub fn is_erased_address(address: &str) -> bool {
    address.ends_with(ERASED_DOMAIN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_hash_is_keyed_and_per_tenant() {
        let h = address_hash(b"secret", "t1", "a@example.com");
        assert_eq!(h.len(), 64);
        assert_eq!(h, address_hash(b"secret", "t1", "a@example.com"));
        assert_ne!(h, address_hash(b"other", "t1", "a@example.com"));
        assert_ne!(h, address_hash(b"secret", "t2", "a@example.com"));
        assert!(!erased_address(&h).contains("example"));
        assert!(is_erased_address(&erased_address(&h)) && !is_erased_address("a@example.com"));
    }

    #[test]
    fn generated_keys_are_long_random_and_prefixed() {
        let a = generate_key("mr_");
        let b = generate_key("mr_");
        assert!(a.starts_with("mr_") && a.len() == 43);
        assert_ne!(a, b);
        assert_eq!(hash_key(&a).len(), 64);
    }
}
