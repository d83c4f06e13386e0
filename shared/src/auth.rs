//! Bearer-token authentication: turns an `Authorization` header into a verified [`UserId`].
//!
//! Two modes, as Better Auth deployments use them:
//! - a shared secret (`BETTER_AUTH_SECRET`): HS256 only;
//! - a JWKS URL (`JWKS_URL`, Better Auth's `/api/auth/jwks`): EdDSA, ES256, RS256 or PS256,
//!   the algorithm taken from the key, never from the token.
//!
//! `exp` and `sub` are always required; `iss` and `aud` when configured.

use std::{
    collections::HashMap,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use jsonwebtoken::{
    Algorithm, DecodingKey, EncodingKey, Header, Validation,
    errors::ErrorKind,
    jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet},
};
use lambda_http::http::{HeaderMap, header::AUTHORIZATION};
use serde::{Deserialize, Serialize};
use tokio::{sync::Mutex, time::Instant};

/// Seconds of clock skew tolerated on `exp`.
const LEEWAY_SECS: u64 = 30;
/// Least time between two fetches of the key set, however many unknown `kid`s arrive.
const JWKS_REFETCH_INTERVAL: Duration = Duration::from_secs(60);
/// How long keys are trusted when the key set's response names no lifetime (`max-age`).
const JWKS_DEFAULT_LIFETIME: Duration = Duration::from_secs(300);
/// Bounds on a lifetime the key set names.
const JWKS_LIFETIME_BOUNDS: (Duration, Duration) =
    (Duration::from_secs(1), Duration::from_secs(24 * 3600));
/// After a failed fetch, requests answer `auth_unavailable` this long before the next try.
const JWKS_RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);
/// Longest wait for the key set.
const JWKS_TIMEOUT: Duration = Duration::from_secs(3);

/// A user id taken from a verified token's `sub`; the only way code learns who the caller is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserId(String);

impl UserId {
    /// The id as Better Auth issued it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why a request is not authenticated.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    /// No usable bearer token, or one that fails verification.
    #[error("missing or invalid bearer token")]
    Unauthorized,
    /// A well-signed token whose `exp` has passed.
    #[error("token expired")]
    Expired,
    /// The key set could not be fetched, so no token can be checked right now.
    #[error("signing keys unavailable: {0}")]
    KeysUnavailable(String),
}

/// Where verification keys come from.
#[derive(Clone, PartialEq, Eq)]
pub enum KeySource {
    /// Better Auth's shared secret; tokens must be HS256.
    Secret(String),
    /// The URL of a JSON Web Key Set.
    Jwks(String),
}

// Hand-written so the secret never reaches a log line.
impl std::fmt::Debug for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySource::Secret(_) => f.write_str("Secret(..)"),
            KeySource::Jwks(url) => f.debug_tuple("Jwks").field(url).finish(),
        }
    }
}

/// How tokens are checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthConfig {
    /// The keys.
    pub keys: KeySource,
    /// Required `iss`, if set.
    pub issuer: Option<String>,
    /// Required `aud`, if set.
    pub audience: Option<String>,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
}

/// Keys fetched from a JWKS URL, kept for the instance's life (they are not user data).
struct JwksCache {
    url: String,
    http: reqwest::Client,
    state: Mutex<JwksState>,
}

#[derive(Default)]
struct JwksState {
    keys: Keyring,
    /// When the keys were last fetched successfully.
    fetched_at: Option<Instant>,
    /// Until when they may be used (the response's cache lifetime).
    usable_until: Option<Instant>,
    /// When the last fetch failed, if it did.
    failed_at: Option<Instant>,
}

enum Keys {
    Secret(DecodingKey),
    Jwks(JwksCache),
}

/// Verifies tokens; built once per cold start.
pub struct Verifier {
    keys: Keys,
    issuer: Option<String>,
    audience: Option<String>,
}

impl Verifier {
    /// A verifier for `config`; a JWKS is fetched on first use, not here.
    pub fn new(config: &AuthConfig, http: reqwest::Client) -> Self {
        let keys = match &config.keys {
            KeySource::Secret(secret) => Keys::Secret(DecodingKey::from_secret(secret.as_bytes())),
            KeySource::Jwks(url) => Keys::Jwks(JwksCache {
                url: url.clone(),
                http,
                state: Mutex::new(JwksState::default()),
            }),
        };
        Self {
            keys,
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
        }
    }

    /// A verifier for HS256 tokens signed with `secret`, checking neither `iss` nor `aud`.
    pub fn hs256(secret: &str) -> Self {
        let config = AuthConfig {
            keys: KeySource::Secret(secret.to_owned()),
            issuer: None,
            audience: None,
        };
        Self::new(&config, reqwest::Client::new())
    }

    /// Returns the caller's user id from the request's `Authorization: Bearer` header.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<UserId, AuthError> {
        let token = bearer_token(headers).ok_or(AuthError::Unauthorized)?;
        let (key, algorithm) = match &self.keys {
            Keys::Secret(key) => (key.clone(), Algorithm::HS256),
            Keys::Jwks(cache) => cache.key_for(token).await?,
        };
        let data = jsonwebtoken::decode::<Claims>(token, &key, &self.validation(algorithm))
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => AuthError::Expired,
                _ => AuthError::Unauthorized,
            })?;
        let sub = data.claims.sub;
        // The id is stored as text with a length check; refuse what could never match.
        if sub.is_empty() || sub.len() > 255 || sub.contains('\0') {
            return Err(AuthError::Unauthorized);
        }
        Ok(UserId(sub))
    }

    fn validation(&self, algorithm: Algorithm) -> Validation {
        // One algorithm, chosen by the key; the token's header never widens it.
        let mut validation = Validation::new(algorithm);
        validation.leeway = LEEWAY_SECS;
        let mut required = vec!["exp", "sub"];
        match &self.issuer {
            Some(issuer) => {
                validation.set_issuer(&[issuer]);
                required.push("iss");
            }
            None => validation.iss = None,
        }
        match &self.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        validation
    }
}

impl JwksCache {
    /// The key (and its algorithm) the token's `kid` names. The set is fetched when the keys
    /// outlived their cache lifetime (so a removed key stops verifying), and at most once a
    /// minute when the `kid` is unknown. While the keys cannot be had, tokens are not refused
    /// as invalid: the answer is `KeysUnavailable` (503), retried after a short pause.
    async fn key_for(&self, token: &str) -> Result<(DecodingKey, Algorithm), AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Unauthorized)?;
        let kid = header.kid.as_deref();
        let mut state = self.state.lock().await;
        let now = Instant::now();
        let expired = state.usable_until.is_none_or(|until| now >= until);
        let may_refetch = state
            .fetched_at
            .is_none_or(|at| now - at >= JWKS_REFETCH_INTERVAL);
        if expired || (find(&state.keys, kid).is_none() && may_refetch) {
            if state
                .failed_at
                .is_some_and(|at| now - at < JWKS_RETRY_AFTER_FAILURE)
            {
                return Err(AuthError::KeysUnavailable(
                    "the key set could not be fetched a moment ago".into(),
                ));
            }
            match self.fetch().await {
                Ok((keys, lifetime)) => {
                    *state = JwksState {
                        keys,
                        fetched_at: Some(now),
                        usable_until: Some(now + lifetime),
                        failed_at: None,
                    };
                }
                Err(e) => {
                    state.failed_at = Some(now);
                    return Err(e);
                }
            }
        }
        find(&state.keys, kid).ok_or(AuthError::Unauthorized)
    }

    /// The keys in the set, and how long they may be used.
    async fn fetch(&self) -> Result<(Keyring, Duration), AuthError> {
        let unavailable = |e: reqwest::Error| AuthError::KeysUnavailable(e.to_string());
        let response = self
            .http
            .get(&self.url)
            .timeout(JWKS_TIMEOUT)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(unavailable)?;
        let lifetime = cache_lifetime(response.headers());
        let set: JwkSet = response.json().await.map_err(unavailable)?;
        let keys: Keyring = set
            .keys
            .iter()
            .filter_map(|jwk| {
                let algorithm = signing_algorithm(jwk)?;
                let key = DecodingKey::from_jwk(jwk).ok()?;
                Some((
                    jwk.common.key_id.clone().unwrap_or_default(),
                    (key, algorithm),
                ))
            })
            .collect();
        tracing::info!(
            keys = keys.len(),
            lifetime_s = lifetime.as_secs(),
            "fetched signing keys"
        );
        Ok((keys, lifetime))
    }
}

/// Keys by `kid`, with the algorithm each signs with.
type Keyring = HashMap<String, (DecodingKey, Algorithm)>;

/// The `max-age` of a key set response, within bounds; the default when it names none.
fn cache_lifetime(headers: &HeaderMap) -> Duration {
    let max_age = headers
        .get(lambda_http::http::header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.split(',')
                .find_map(|directive| directive.trim().strip_prefix("max-age="))
                .and_then(|secs| secs.trim().parse().ok())
        })
        .map(Duration::from_secs);
    let (least, most) = JWKS_LIFETIME_BOUNDS;
    max_age.map_or(JWKS_DEFAULT_LIFETIME, |age| age.clamp(least, most))
}

/// The key named `kid`; a token without `kid` may use a set holding a single key.
fn find(keys: &Keyring, kid: Option<&str>) -> Option<(DecodingKey, Algorithm)> {
    match kid {
        Some(kid) => keys.get(kid).cloned(),
        None if keys.len() == 1 => keys.values().next().cloned(),
        None => None,
    }
}

/// The algorithm a published key signs with: its `alg`, or what its type implies. Symmetric
/// keys are never accepted from a key set.
fn signing_algorithm(jwk: &Jwk) -> Option<Algorithm> {
    let implied = match &jwk.algorithm {
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
            Algorithm::EdDSA
        }
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => Algorithm::ES256,
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P384 => Algorithm::ES384,
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        _ => return None,
    };
    let algorithm = match jwk.common.key_algorithm {
        Some(declared) => declared.to_string().parse().ok()?,
        None => implied,
    };
    // A declared algorithm must fit the key type (no HS256 on a public key, say).
    let fits = matches!(
        (algorithm, implied),
        (Algorithm::EdDSA, Algorithm::EdDSA)
            | (Algorithm::ES256, Algorithm::ES256)
            | (Algorithm::ES384, Algorithm::ES384)
            | (
                Algorithm::RS256
                    | Algorithm::RS384
                    | Algorithm::RS512
                    | Algorithm::PS256
                    | Algorithm::PS384
                    | Algorithm::PS512,
                Algorithm::RS256
            )
    );
    fits.then_some(algorithm)
}

fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[derive(Serialize)]
struct IssuedClaims<'a> {
    sub: &'a str,
    iat: u64,
    exp: u64,
}

/// Signs an HS256 token for `user_id`, as Better Auth would; for local development and tests.
pub fn issue_hs256(secret: &[u8], user_id: &str, valid_for: Duration) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    let claims = IssuedClaims {
        sub: user_id,
        iat: now,
        exp: now + valid_for.as_secs(),
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret),
    )
    .expect("HS256 signing cannot fail")
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_http::http::HeaderValue;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[tokio::test]
    async fn valid_token_yields_its_subject() {
        let token = issue_hs256(SECRET.as_bytes(), "user-1", Duration::from_secs(60));
        let user = Verifier::hs256(SECRET)
            .authenticate(&headers(&format!("Bearer {token}")))
            .await
            .unwrap();
        assert_eq!(user.as_str(), "user-1");
    }

    #[tokio::test]
    async fn missing_header_and_other_schemes_are_unauthorized() {
        let token = issue_hs256(SECRET.as_bytes(), "user-1", Duration::from_secs(60));
        let verifier = Verifier::hs256(SECRET);
        assert_eq!(
            verifier.authenticate(&HeaderMap::new()).await,
            Err(AuthError::Unauthorized)
        );
        for value in [format!("Basic {token}"), token.clone(), "Bearer ".into()] {
            let err = verifier.authenticate(&headers(&value)).await;
            assert_eq!(err, Err(AuthError::Unauthorized), "accepted {value:?}");
        }
    }

    #[test]
    fn symmetric_and_mismatched_keys_are_never_taken_from_a_key_set() {
        let jwk = |value: serde_json::Value| -> Jwk { serde_json::from_value(value).unwrap() };
        let ed = serde_json::json!({"kty": "OKP", "crv": "Ed25519",
            "x": "B7LBPscN560jm3in86zoo8_NjWzuX7KtF3NHxJ1b2qo"});
        assert_eq!(signing_algorithm(&jwk(ed.clone())), Some(Algorithm::EdDSA));
        let mut declared_hs = ed;
        declared_hs["alg"] = "HS256".into();
        assert_eq!(signing_algorithm(&jwk(declared_hs)), None);
        let octet = serde_json::json!({"kty": "oct", "k": "c2VjcmV0"});
        assert_eq!(signing_algorithm(&jwk(octet)), None);
    }

    #[test]
    fn debug_output_hides_the_secret() {
        let shown = format!("{:?}", KeySource::Secret(SECRET.into()));
        assert!(!shown.contains(SECRET));
    }
}
