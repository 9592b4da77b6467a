//! Sign-in tokens, shared by the query service (which issues them) and the ingest
//! gateway (which checks them on ratings): HS256 JWTs with `sub` (the user id),
//! `roles`, `iat` and `exp`.

use axum::http::HeaderMap;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::http::Problem;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// At least 32 bytes, shared by every instance of every service. Empty (the
    /// default): a random secret per process, logged as a warning, so tokens die
    /// with the process and work on one instance only. There is never a fixed
    /// default secret.
    pub jwt_secret: String,
    pub token_ttl_secs: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self { jwt_secret: String::new(), token_ttl_secs: 30 * 60 }
    }
}

/// What a token says.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: Uuid,
    pub roles: Vec<String>,
    pub exp: u64,
    pub iat: u64,
}

impl Claims {
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}

/// Signs and checks tokens with one secret.
pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    ttl_secs: u64,
}

impl Tokens {
    pub fn new(cfg: &AuthConfig) -> anyhow::Result<Self> {
        let secret = if cfg.jwt_secret.is_empty() {
            tracing::warn!(
                "auth.jwt_secret is not set: using a random secret for this process only; \
                 tokens end with the process and are not accepted by other instances"
            );
            let mut bytes = [0u8; 32];
            rand::rng().fill_bytes(&mut bytes);
            bytes.to_vec()
        } else {
            anyhow::ensure!(cfg.jwt_secret.len() >= 32, "auth.jwt_secret must be at least 32 bytes");
            cfg.jwt_secret.as_bytes().to_vec()
        };
        Ok(Self {
            encoding: EncodingKey::from_secret(&secret),
            decoding: DecodingKey::from_secret(&secret),
            ttl_secs: cfg.token_ttl_secs,
        })
    }

    /// A token for `user` with `roles`, valid for the configured time.
    pub fn issue(&self, user: Uuid, roles: Vec<String>) -> Result<String, Problem> {
        let iat = chrono::Utc::now().timestamp() as u64;
        let claims = Claims { sub: user, roles, iat, exp: iat + self.ttl_secs };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding).map_err(|e| {
            tracing::error!(error = %e, "signing a token failed");
            Problem::internal()
        })
    }

    /// The claims of a valid, unexpired token.
    pub fn verify(&self, token: &str) -> Option<Claims> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation).ok().map(|t| t.claims)
    }

    /// `Authorization: Bearer <token>` → its claims; 401 when missing or invalid.
    pub fn required(&self, headers: &HeaderMap) -> Result<Claims, Problem> {
        self.optional(headers)?.ok_or_else(|| Problem::unauthorized("sign in first"))
    }

    /// Like [`required`](Self::required), but no header at all is `None`. A header
    /// that is present and wrong is still a 401: a client that meant to sign in
    /// should hear that it did not.
    pub fn optional(&self, headers: &HeaderMap) -> Result<Option<Claims>, Problem> {
        let Some(header) = headers.get(axum::http::header::AUTHORIZATION) else { return Ok(None) };
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .ok_or_else(|| Problem::unauthorized("expected `Authorization: Bearer <token>`"))?;
        self.verify(token.trim()).map(Some).ok_or_else(|| Problem::unauthorized("the token is invalid or expired"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn tokens(secret: &str) -> Tokens {
        Tokens::new(&AuthConfig { jwt_secret: secret.into(), token_ttl_secs: 60 }).unwrap()
    }

    #[test]
    fn a_token_is_accepted_by_its_secret_only() {
        let (a, b) = (tokens(&"a".repeat(32)), tokens(&"b".repeat(32)));
        let user = Uuid::new_v4();
        let t = a.issue(user, vec!["moderator".into()]).unwrap();
        let c = a.verify(&t).unwrap();
        assert_eq!(c.sub, user);
        assert!(c.has_role("moderator") && !c.has_role("admin"));
        assert!(b.verify(&t).is_none());
        let mut h = HeaderMap::new();
        assert!(a.optional(&h).unwrap().is_none());
        assert_eq!(a.required(&h).unwrap_err().status().as_u16(), 401);
        h.insert("authorization", HeaderValue::from_str(&format!("Bearer {t}")).unwrap());
        assert_eq!(a.required(&h).unwrap().sub, user);
        assert_eq!(b.optional(&h).unwrap_err().status().as_u16(), 401);
        h.insert("authorization", HeaderValue::from_static("Basic abc"));
        assert_eq!(a.optional(&h).unwrap_err().status().as_u16(), 401);
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(Tokens::new(&AuthConfig { jwt_secret: "short".into(), token_ttl_secs: 60 }).is_err());
    }
}
