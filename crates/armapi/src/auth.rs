//! OAuth2 client-credentials for one service principal per site, AD FS style (the authority
//! ends in `/adfs`, as on Azure Stack Hub), and the bearer tokens every API call must carry.
//!
//! Tokens are JWTs signed with a key the whole lab shares, so a token of one site's principal
//! is genuine at the other site too — and answered 403 there, as Azure answers a principal
//! without rights on the subscription, rather than 401.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// How long a token lives (Azure's access tokens: about an hour).
pub const TOKEN_LIFETIME_SECS: u64 = 3600;

/// One site's service principal. The secret is kept only as a hash.
#[derive(Clone)]
pub struct Principal {
    /// Application (client) id.
    pub client_id: String,
    /// Tenant (directory) id.
    pub tenant_id: String,
    secret_sha256: [u8; 32],
}

impl std::fmt::Debug for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Principal")
            .field("client_id", &self.client_id)
            .field("tenant_id", &self.tenant_id)
            .finish_non_exhaustive()
    }
}

impl Principal {
    /// A principal whose secret is `secret`.
    pub fn new(client_id: &str, tenant_id: &str, secret: &str) -> Principal {
        Principal {
            client_id: client_id.to_string(),
            tenant_id: tenant_id.to_string(),
            secret_sha256: Sha256::digest(secret.as_bytes()).into(),
        }
    }

    /// Whether `secret` is this principal's (compared as hashes, in constant time).
    pub fn secret_matches(&self, secret: &str) -> bool {
        let h: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
        h.iter()
            .zip(self.secret_sha256.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

/// What a token says about its bearer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// Audience: the Resource Manager endpoint.
    pub aud: String,
    /// Issuer: the site's authority.
    pub iss: String,
    /// Issued at (Unix seconds).
    pub iat: u64,
    /// Not before.
    pub nbf: u64,
    /// Expiry.
    pub exp: u64,
    /// Application id of the principal.
    pub appid: String,
    /// Tenant id.
    pub tid: String,
    /// Object id (the principal's id; the application id here).
    pub oid: String,
    /// Subject.
    pub sub: String,
}

/// Signs and checks the lab's tokens.
#[derive(Clone)]
pub struct TokenKey {
    key: Vec<u8>,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(..)")
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl TokenKey {
    /// A key from secret bytes (at least 32).
    pub fn new(key: &[u8]) -> TokenKey {
        TokenKey { key: key.to_vec() }
    }

    /// A token for `p`, for audience `aud`, issued by `iss`.
    pub fn issue(&self, p: &Principal, aud: &str, iss: &str) -> Result<String, ApiError> {
        let t = now();
        let claims = Claims {
            aud: aud.to_string(),
            iss: iss.to_string(),
            iat: t,
            nbf: t.saturating_sub(300),
            exp: t + TOKEN_LIFETIME_SECS,
            appid: p.client_id.clone(),
            tid: p.tenant_id.clone(),
            oid: p.client_id.clone(),
            sub: p.client_id.clone(),
        };
        let key = EncodingKey::from_secret(&self.key)
            .map_err(|e| ApiError::internal(format!("token key: {e}")))?;
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key)
            .map_err(|e| ApiError::internal(format!("signing a token: {e}")))
    }

    /// The claims of a bearer token, or 401 with Azure's code: `ExpiredAuthenticationToken`,
    /// `InvalidAuthenticationTokenAudience`, `InvalidAuthenticationToken`.
    pub fn check(&self, token: &str, audiences: &[String]) -> Result<Claims, ApiError> {
        let mut v = Validation::new(Algorithm::HS256);
        v.leeway = 60;
        v.validate_aud = false;
        v.set_required_spec_claims(&["exp", "aud"]);
        let key = DecodingKey::from_secret(&self.key)
            .map_err(|e| ApiError::internal(format!("token key: {e}")))?;
        let data = jsonwebtoken::decode::<Claims>(token, &key, &v).map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => ApiError::unauthorized(
                "ExpiredAuthenticationToken",
                "The access token expiry UTC time is earlier than current UTC time.",
            ),
            _ => {
                ApiError::unauthorized("InvalidAuthenticationToken", "The access token is invalid.")
            }
        })?;
        let aud = data.claims.aud.trim_end_matches('/');
        if !audiences.iter().any(|a| a.trim_end_matches('/') == aud) {
            return Err(ApiError::unauthorized(
                "InvalidAuthenticationTokenAudience",
                format!(
                    "The access token has been obtained for wrong audience or resource '{}'. It should exactly match with one of the allowed audiences '{}'.",
                    data.claims.aud,
                    audiences.join("','")
                ),
            ));
        }
        Ok(data.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> TokenKey {
        TokenKey::new(b"0123456789abcdef0123456789abcdef")
    }

    fn principal() -> Principal {
        Principal::new("app", "tenant", "s3cret")
    }

    #[test]
    fn a_token_for_the_endpoint_is_accepted_with_or_without_the_slash() {
        let t = key()
            .issue(&principal(), "https://127.0.0.1:1/", "iss")
            .unwrap();
        let aud = vec!["https://127.0.0.1:1/".to_string()];
        let c = key().check(&t, &aud).unwrap();
        assert_eq!((c.appid.as_str(), c.tid.as_str()), ("app", "tenant"));
        let t = key()
            .issue(&principal(), "https://127.0.0.1:1", "iss")
            .unwrap();
        assert!(key().check(&t, &aud).is_ok());
    }

    #[test]
    fn expired_forged_and_misdirected_tokens_get_azures_codes() {
        let aud = vec!["https://127.0.0.1:1/".to_string()];
        let old = Claims {
            aud: aud[0].clone(),
            iss: "iss".into(),
            iat: 1,
            nbf: 1,
            exp: 100,
            appid: "app".into(),
            tid: "tenant".into(),
            oid: "app".into(),
            sub: "app".into(),
        };
        let expired = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &old,
            &EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef").unwrap(),
        )
        .unwrap();
        assert_eq!(
            key().check(&expired, &aud).unwrap_err().code,
            "ExpiredAuthenticationToken"
        );
        let other = TokenKey::new(b"another key of thirty-two bytes!");
        let forged = other.issue(&principal(), &aud[0], "iss").unwrap();
        assert_eq!(
            key().check(&forged, &aud).unwrap_err().code,
            "InvalidAuthenticationToken"
        );
        assert_eq!(
            key().check("not a token", &aud).unwrap_err().code,
            "InvalidAuthenticationToken"
        );
        let elsewhere = key()
            .issue(&principal(), "https://127.0.0.1:2/", "iss")
            .unwrap();
        let e = key().check(&elsewhere, &aud).unwrap_err();
        assert_eq!(e.code, "InvalidAuthenticationTokenAudience");
        assert_eq!(e.status, axum::http::StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn secrets_are_compared_and_never_shown() {
        let p = principal();
        assert!(p.secret_matches("s3cret"));
        assert!(!p.secret_matches("s3cret "));
        assert!(!format!("{p:?}").contains("s3cret"));
        assert!(!format!("{:?}", key()).contains("0123"));
    }
}
