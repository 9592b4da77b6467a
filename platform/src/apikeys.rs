//! Producer API keys: what a backend presents (`X-Api-Key: vck_…`) to send events
//! that carry a value, or batches.
//!
//! The config holds only each key's SHA-256, never the key: a leaked config file or
//! `--print-config` output gives nothing to present. A plain hash (no salt, no
//! argon2) is enough because the keys are 256 random bits, not passwords: there is
//! nothing to guess. The presented key's hash is compared with every configured hash
//! in constant time (`subtle`), so the time taken says nothing about how close a
//! guess was. `vcount-admin api-key` makes a key and prints its hash.

use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::ratelimit::Rate;

/// One configured key.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// Who holds it (logs and metrics say this, never the key).
    pub name: String,
    /// Lower-case hex SHA-256 of the key.
    pub sha256: String,
    /// This key's own rate limit, in events (0: no limit).
    pub per_second: u32,
    pub burst: u32,
}

/// The prefix of keys made by [`generate`], so a key in a log or a paste is
/// recognisable (and secret scanners can find it).
pub const KEY_PREFIX: &str = "vck_";

/// The configured keys, ready to check.
#[derive(Clone, Debug, Default)]
pub struct ApiKeys {
    keys: Vec<([u8; 32], ApiKeyConfig)>,
}

impl ApiKeys {
    pub fn new(configs: &[ApiKeyConfig]) -> anyhow::Result<Self> {
        let mut keys = Vec::with_capacity(configs.len());
        for c in configs {
            let hash = parse_hex32(&c.sha256)
                .ok_or_else(|| anyhow::anyhow!("api key {:?}: sha256 must be 64 hex digits", c.name))?;
            anyhow::ensure!(!c.name.is_empty(), "every api key needs a name");
            anyhow::ensure!(
                keys.iter().all(|(h, k): &([u8; 32], ApiKeyConfig)| *h != hash && k.name != c.name),
                "api key {:?} is configured twice",
                c.name
            );
            keys.push((hash, c.clone()));
        }
        Ok(Self { keys })
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The index and config of the key whose hash matches `presented`. Every
    /// configured hash is compared, in constant time each.
    pub fn verify(&self, presented: &str) -> Option<(usize, &ApiKeyConfig)> {
        let hash: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found = None;
        for (i, (h, cfg)) in self.keys.iter().enumerate() {
            if bool::from(h.ct_eq(&hash)) {
                found = Some((i, cfg));
            }
        }
        found
    }

    /// Each key's rate, by index.
    pub fn rates(&self) -> Vec<Rate> {
        self.keys.iter().map(|(_, c)| Rate::new(c.per_second, c.burst)).collect()
    }
}

/// A new key (`vck_` + 64 hex digits, 256 random bits) and its SHA-256 in hex.
pub fn generate() -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let key = format!("{KEY_PREFIX}{}", hex(&bytes));
    let hash = sha256_hex(&key);
    (key, hash)
}

/// Lower-case hex SHA-256 of `key`, as the config stores it.
pub fn sha256_hex(key: &str) -> String {
    hex(&Sha256::digest(key.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    let s = s.trim();
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(name: &str, hash: String) -> ApiKeyConfig {
        ApiKeyConfig { name: name.into(), sha256: hash, per_second: 10, burst: 10 }
    }

    #[test]
    fn only_the_key_whose_hash_is_configured_passes() {
        let (a, ha) = generate();
        let (b, hb) = generate();
        assert!(a.starts_with(KEY_PREFIX) && a.len() == 68 && a != b);
        let keys = ApiKeys::new(&[cfg("importer", ha.clone()), cfg("cdn", hb.to_uppercase())]).unwrap();
        assert_eq!(keys.verify(&a).map(|(i, c)| (i, c.name.as_str())), Some((0, "importer")));
        assert_eq!(keys.verify(&b).map(|(i, _)| i), Some(1));
        assert!(keys.verify(&ha).is_none(), "the hash itself is not a key");
        assert!(keys.verify("").is_none());
        assert!(keys.verify(&a[..67]).is_none());
    }

    #[test]
    fn bad_configs_are_refused() {
        let (_, h) = generate();
        assert!(ApiKeys::new(&[cfg("x", "abc".into())]).is_err());
        assert!(ApiKeys::new(&[cfg("x", "g".repeat(64))]).is_err());
        assert!(ApiKeys::new(&[cfg("x", h.clone()), cfg("y", h.clone())]).is_err());
        assert!(ApiKeys::new(&[cfg("", h)]).is_err());
        // A known vector: SHA-256 of "abc".
        assert_eq!(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
