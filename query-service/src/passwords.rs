//! Passwords: argon2id hashes, computed on a bounded pool, the same work for every
//! login.
//!
//! - **Bounded.** An argon2id hash (the crate's defaults: 19 MiB, two passes) takes
//!   tens of milliseconds of one core and its memory. On Tokio's blocking pool (up to
//!   512 threads) a burst of logins would pin every core and take gigabytes; on a
//!   [`BoundedPool`] of about one worker per core, at most `hash_workers` hashes run,
//!   `hash_queue` more wait, and the rest are refused at once with 503 and
//!   `Retry-After`, so the memory is at most `hash_workers` × 19 MiB whatever arrives.
//! - **The same work whoever asks.** A login for an email that has no account is
//!   checked against a dummy hash made at start-up with the same parameters, so
//!   every login runs exactly one hash: the answer's timing does not say whether
//!   the account exists. (`query_password_hashes_total` counts the hashes; the tests
//!   count them rather than timing answers.)
//! - **Bounded input.** Passwords longer than `MAX_PASSWORD_BYTES` are refused
//!   before any hashing (`domain::validate::password`, and at login).

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use platform::http::Problem;
use platform::work::{BoundedPool, Busy};
use rand::RngCore;

use crate::config::PasswordConfig;
use crate::metrics::{PASSWORD_HASHES, PASSWORD_HASHES_REFUSED};

pub struct Passwords {
    pool: BoundedPool,
    /// A hash of a random password: what a login for an unknown email is checked
    /// against, so that it costs one hash like any other.
    dummy: String,
}

fn salt() -> Result<SaltString, String> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    SaltString::encode_b64(&salt).map_err(|e| e.to_string())
}

/// One argon2id hash with the crate's default parameters (those of every stored hash).
fn hash_now(password: &[u8]) -> Result<String, String> {
    PASSWORD_HASHES.counter().increment(1);
    Argon2::default().hash_password(password, &salt()?).map(|h| h.to_string()).map_err(|e| e.to_string())
}

/// One argon2id verification: the same work as a hash with the stored parameters.
fn verify_now(password: &[u8], stored: &str) -> bool {
    PASSWORD_HASHES.counter().increment(1);
    PasswordHash::new(stored).is_ok_and(|h| Argon2::default().verify_password(password, &h).is_ok())
}

fn busy(_: Busy) -> Problem {
    PASSWORD_HASHES_REFUSED.counter().increment(1);
    Problem::unavailable("too many sign-ins are being checked at once; retry shortly", 1)
}

impl Passwords {
    /// The pool, and the dummy hash (one hash, made now).
    pub fn new(cfg: &PasswordConfig) -> anyhow::Result<Self> {
        let pool = if cfg.hash_workers == 0 {
            BoundedPool::per_core(cfg.hash_queue)
        } else {
            BoundedPool::new(cfg.hash_workers, cfg.hash_queue)
        };
        let mut random = [0u8; 32];
        rand::rng().fill_bytes(&mut random);
        let dummy = Argon2::default()
            .hash_password(&random, &salt().map_err(anyhow::Error::msg)?)
            .map_err(|e| anyhow::anyhow!("making the dummy password hash: {e}"))?
            .to_string();
        Ok(Self { pool, dummy })
    }

    /// The PHC string of a new hash of `password`; 503 when the pool is full.
    pub async fn hash(&self, password: String) -> Result<String, Problem> {
        let hashed = self.pool.run(move || hash_now(password.as_bytes())).await.map_err(busy)?;
        hashed.map_err(|e| {
            tracing::error!(error = %e, "hashing a password failed");
            Problem::internal()
        })
    }

    /// Whether `password` matches `stored`; with no stored hash (no such account)
    /// the same work is done against the dummy and the answer is `false`. 503 when
    /// the pool is full.
    pub async fn verify(&self, password: String, stored: Option<String>) -> Result<bool, Problem> {
        let (stored, real) = match stored {
            Some(s) => (s, true),
            None => (self.dummy.clone(), false),
        };
        let matched = self.pool.run(move || verify_now(password.as_bytes(), &stored)).await.map_err(busy)?;
        Ok(matched && real)
    }
}
