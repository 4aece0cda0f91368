//! JWT bearer tokens: what a token signed by an identity provider grants.
//!
//! A bearer token that is not one of the configured static tokens is read as a JWT when
//! [`Config::jwt`](crate::Config::jwt) is set: its signature is checked (HS256 with a shared
//! secret, or RS256/ES256 with the key of a JWKS file named by the token's `kid`), `exp` and
//! `nbf` with a leeway, `iss` and `aud` when configured. A claim names the scopes (a string or a
//! list of strings, e.g. the seeds' `organization_id`) and another the access (`"read"` or
//! `"write"`). A JWT never grants the admin API: that stays with static tokens held by the
//! backend.
//!
//! ```
//! use tether_server::auth::{Access, JwtConfig};
//! use jsonwebtoken::{encode, EncodingKey, Header};
//!
//! let config = JwtConfig {
//!     scopes_claim: "organization_id".into(),
//!     ..JwtConfig::hs256(b"a shared secret of the identity provider")
//! };
//! let claims = serde_json::json!({"organization_id": "org-1", "exp": 4_102_444_800u64});
//! let key = EncodingKey::from_secret(b"a shared secret of the identity provider").unwrap();
//! let token = encode(&Header::default(), &claims, &key).unwrap();
//! let grant = config.grant(&token).unwrap();
//! assert_eq!(grant.scopes, ["org-1"]);
//! assert!(grant.read_only, "read unless the access claim says write");
//! assert_eq!(config.default_access, Access::Read);
//! ```

use std::collections::HashMap;
use std::path::Path;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::ServerError;

/// What a token may do with the scopes it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// Pull, status, digest and records; a push is `403`.
    Read,
    /// Everything `Read` may, and push.
    Write,
}

/// Where the keys that sign tokens come from.
#[derive(Clone)]
pub enum JwtKeys {
    /// HS256 with a shared secret.
    Hs256(Vec<u8>),
    /// RS256 or ES256 with the public keys of a JWKS document; a token's `kid` picks the key.
    Jwks(JwkSet),
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JwtKeys::Hs256(_) => f.write_str("Hs256(..)"),
            JwtKeys::Jwks(set) => write!(f, "Jwks({} keys)", set.keys.len()),
        }
    }
}

/// How JWT bearer tokens are checked and what they grant.
#[derive(Debug, Clone)]
pub struct JwtConfig {
    /// The signing keys.
    pub keys: JwtKeys,
    /// Required `iss`, if any.
    pub issuer: Option<String>,
    /// Required `aud` (one of the token's), if any; without it a token carrying `aud` is
    /// refused.
    pub audience: Option<String>,
    /// Clock skew allowed on `exp` and `nbf`, in seconds (default 30).
    pub leeway_s: u64,
    /// The claim naming the scopes: a string or a list of strings (default `"scopes"`).
    pub scopes_claim: String,
    /// The claim naming the access, `"read"` or `"write"` (default `"access"`).
    pub access_claim: String,
    /// The access of a token without that claim (default read).
    pub default_access: Access,
}

/// Why a JWT was refused: said in the `401` answer, nothing more.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// `exp` is past (beyond the leeway).
    #[error("the token has expired")]
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    #[error("the token is not valid yet")]
    NotYetValid,
    /// The signature does not verify with the key.
    #[error("the token's signature is not valid")]
    BadSignature,
    /// No key of the JWKS has the token's `kid` (or the token has none).
    #[error("the token's signing key is unknown")]
    UnknownKey,
    /// The algorithm is not one the key is for.
    #[error("the token's algorithm is not accepted")]
    BadAlgorithm,
    /// `iss` is not the configured issuer.
    #[error("the token's issuer is not accepted")]
    BadIssuer,
    /// `aud` does not name the configured audience.
    #[error("the token's audience is not accepted")]
    BadAudience,
    /// A required claim is missing or of the wrong type.
    #[error("the token lacks a valid {0:?} claim")]
    Claim(String),
    /// Not a JWT at all.
    #[error("the token is not a valid JWT")]
    Malformed,
}

impl JwtConfig {
    /// HS256 tokens signed with `secret`, default claims.
    pub fn hs256(secret: &[u8]) -> Self {
        Self::with_keys(JwtKeys::Hs256(secret.to_vec()))
    }

    /// RS256/ES256 tokens signed by the keys of a JWKS document (`{"keys": [...]}`).
    pub fn jwks(json: &str) -> Result<Self, ServerError> {
        let set: JwkSet = serde_json::from_str(json)
            .map_err(|e| ServerError::Config(format!("not a JWKS document: {e}")))?;
        if set.keys.is_empty() {
            return Err(ServerError::Config("the JWKS document has no keys".into()));
        }
        for key in &set.keys {
            if key.common.key_id.is_none() {
                return Err(ServerError::Config(
                    "every key of the JWKS document needs a \"kid\"".into(),
                ));
            }
            DecodingKey::from_jwk(key).map_err(|e| {
                ServerError::Config(format!("a key of the JWKS document is not usable: {e}"))
            })?;
        }
        Ok(Self::with_keys(JwtKeys::Jwks(set)))
    }

    /// [`JwtConfig::jwks`] from a file.
    pub fn jwks_file(path: &Path) -> Result<Self, ServerError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ServerError::Config(format!("cannot read JWKS file {}: {e}", path.display()))
        })?;
        Self::jwks(&text)
    }

    fn with_keys(keys: JwtKeys) -> Self {
        JwtConfig {
            keys,
            issuer: None,
            audience: None,
            leeway_s: 30,
            scopes_claim: "scopes".into(),
            access_claim: "access".into(),
            default_access: Access::Read,
        }
    }

    /// Checks a token and returns what it grants.
    pub fn grant(&self, token: &str) -> Result<Grant, Refused> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| Refused::Malformed)?;
        let (key, alg) = match &self.keys {
            JwtKeys::Hs256(secret) => (
                DecodingKey::from_secret(secret).map_err(|_| Refused::BadSignature)?,
                Algorithm::HS256,
            ),
            JwtKeys::Jwks(set) => {
                let jwk = header
                    .kid
                    .as_deref()
                    .and_then(|kid| set.find(kid))
                    .ok_or(Refused::UnknownKey)?;
                let alg = match header.alg {
                    a @ (Algorithm::RS256 | Algorithm::ES256) => a,
                    _ => return Err(Refused::BadAlgorithm),
                };
                (
                    DecodingKey::from_jwk(jwk).map_err(|_| Refused::UnknownKey)?,
                    alg,
                )
            }
        };
        let mut v = Validation::new(alg);
        v.leeway = self.leeway_s;
        v.validate_nbf = true;
        v.set_required_spec_claims(&["exp"]);
        match &self.audience {
            Some(aud) => v.set_audience(&[aud]),
            // Checked below: jsonwebtoken would call a lone `aud` string a malformed claim.
            None => v.validate_aud = false,
        }
        if let Some(iss) = &self.issuer {
            v.set_issuer(&[iss]);
        }
        let claims =
            jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(token, &key, &v)
                .map_err(|e| match e.kind() {
                    ErrorKind::ExpiredSignature => Refused::Expired,
                    ErrorKind::ImmatureSignature => Refused::NotYetValid,
                    ErrorKind::InvalidSignature => Refused::BadSignature,
                    ErrorKind::InvalidAlgorithm => Refused::BadAlgorithm,
                    ErrorKind::InvalidIssuer => Refused::BadIssuer,
                    ErrorKind::InvalidAudience => Refused::BadAudience,
                    ErrorKind::MissingRequiredClaim(c) | ErrorKind::InvalidClaimFormat(c) => {
                        Refused::Claim(c.clone())
                    }
                    _ => Refused::Malformed,
                })?
                .claims;
        // A token meant for another API (it names its audience) is not ours to honour, even
        // when it carries a scopes claim: with no audience configured, any `aud` is refused.
        if self.audience.is_none() && claims.contains_key("aud") {
            return Err(Refused::BadAudience);
        }
        let claim = |name: &str| Refused::Claim(name.to_string());
        let scopes = match claims.get(&self.scopes_claim) {
            Some(serde_json::Value::String(s)) if !s.is_empty() => vec![s.clone()],
            Some(serde_json::Value::Array(list)) if !list.is_empty() => list
                .iter()
                .map(|v| v.as_str().filter(|s| !s.is_empty()).map(String::from))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| claim(&self.scopes_claim))?,
            _ => return Err(claim(&self.scopes_claim)),
        };
        let access = match claims.get(&self.access_claim) {
            None => self.default_access,
            Some(v) => serde_json::from_value(v.clone()).map_err(|_| claim(&self.access_claim))?,
        };
        Ok(Grant {
            // "*" in a token would be every scope: a JWT names scopes, it never grants all.
            scopes: scopes.into_iter().filter(|s| s != "*").collect(),
            admin: false,
            read_only: access == Access::Read,
        })
    }
}

/// Whether a bearer token has the shape of a JWT (three base64url parts).
pub(crate) fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3
}

/// What one bearer token grants.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Grant {
    /// Scopes the token may read and push to; `"*"` grants every scope.
    pub scopes: Vec<String>,
    /// Whether the token may also use the admin API (the backend writing its own data,
    /// purging tombstones) on those scopes.
    #[serde(default)]
    pub admin: bool,
    /// Read-only: pulls, status, digest and records, but a push is `403` (default false:
    /// read-write).
    #[serde(default)]
    pub read_only: bool,
}

impl Grant {
    /// Whether the grant covers `scope`.
    pub fn allows(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == "*" || s == scope)
    }
}

/// Bearer tokens and their grants.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Tokens(pub HashMap<String, Grant>);

impl Tokens {
    /// Parses the JSON form: `{"<token>": {"scopes": ["org-1"], "admin": false}, ...}`.
    pub fn from_json(json: &str) -> Result<Self, ServerError> {
        let tokens: Tokens = serde_json::from_str(json)
            .map_err(|e| ServerError::Config(format!("tokens are not valid JSON: {e}")))?;
        if tokens.0.keys().any(|t| t.is_empty()) {
            return Err(ServerError::Config("a token must not be empty".into()));
        }
        Ok(tokens)
    }

    /// Reads tokens from a JSON file.
    pub fn from_file(path: &std::path::Path) -> Result<Self, ServerError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ServerError::Config(format!("cannot read tokens file {}: {e}", path.display()))
        })?;
        Self::from_json(&text)
    }

    /// Reads tokens from the JSON in environment variable `var` (`None` if it is unset).
    pub fn from_env(var: &str) -> Result<Option<Self>, ServerError> {
        match std::env::var(var) {
            Ok(json) => Self::from_json(&json).map(Some),
            Err(_) => Ok(None),
        }
    }

    /// Adds a token.
    pub fn grant(mut self, token: &str, scopes: &[&str], admin: bool) -> Self {
        self.0.insert(
            token.to_string(),
            Grant {
                scopes: scopes.iter().map(|s| s.to_string()).collect(),
                admin,
                read_only: false,
            },
        );
        self
    }

    /// The grant of a token, compared in constant time: every configured token is compared,
    /// through the SHA-256 of each side (equal lengths, so not even the length of a token
    /// leaks), and none of them ends the scan early. A hash map lookup would compare the
    /// bytes of a token whose hash matched with `memcmp`, whose time tells how many leading
    /// bytes of a guess were right.
    pub fn lookup(&self, token: &str) -> Option<&Grant> {
        let mut found = None;
        for (candidate, grant) in &self.0 {
            if same_secret(token, candidate) {
                found = Some(grant);
            }
        }
        found
    }
}

/// The token of an `Authorization: Bearer <token>` value. The scheme is case-insensitive and
/// followed by one or more spaces (RFC 7235 §2.1); an empty token is none.
pub(crate) fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Whether two secrets are equal, in time that does not depend on where they differ (the
/// SHA-256 of each side is compared, so not even the length of a secret leaks).
pub(crate) fn same_secret(given: &str, wanted: &str) -> bool {
    use sha2::{Digest, Sha256};
    use subtle::ConstantTimeEq;
    Sha256::digest(given.as_bytes())
        .ct_eq(&Sha256::digest(wanted.as_bytes()))
        .into()
}
