//! Bearer-token authentication: turns an `Authorization` header into a verified [`UserId`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use lambda_http::http::{HeaderMap, header::AUTHORIZATION};
use serde::{Deserialize, Serialize};

/// Seconds of clock skew tolerated on `exp`.
const LEEWAY_SECS: u64 = 30;

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
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
}

/// Verifies tokens; built once per cold start.
pub struct Verifier {
    key: DecodingKey,
    validation: Validation,
}

impl Verifier {
    /// A verifier for HS256 tokens signed with Better Auth's shared secret.
    pub fn hs256(secret: &[u8]) -> Self {
        // The algorithm is pinned here; the token header never chooses it.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.leeway = LEEWAY_SECS;
        Self {
            key: DecodingKey::from_secret(secret),
            validation,
        }
    }

    /// Returns the caller's user id from the request's `Authorization: Bearer` header.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<UserId, AuthError> {
        let token = bearer_token(headers).ok_or(AuthError::Unauthorized)?;
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation).map_err(
            |e| match e.kind() {
                ErrorKind::ExpiredSignature => AuthError::Expired,
                _ => AuthError::Unauthorized,
            },
        )?;
        let sub = data.claims.sub;
        // The id is stored as text with a length check; refuse what could never match.
        if sub.is_empty() || sub.len() > 255 {
            return Err(AuthError::Unauthorized);
        }
        Ok(UserId(sub))
    }
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

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        headers
    }

    fn sign(claims: serde_json::Value, secret: &[u8]) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret),
        )
        .unwrap()
    }

    fn now() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    #[test]
    fn valid_token_yields_its_subject() {
        let token = issue_hs256(SECRET, "user-1", Duration::from_secs(60));
        let user = Verifier::hs256(SECRET)
            .authenticate(&headers(&format!("Bearer {token}")))
            .unwrap();
        assert_eq!(user.as_str(), "user-1");
    }

    #[test]
    fn missing_header_is_unauthorized() {
        let err = Verifier::hs256(SECRET).authenticate(&HeaderMap::new());
        assert_eq!(err, Err(AuthError::Unauthorized));
    }

    #[test]
    fn other_schemes_and_garbage_are_unauthorized() {
        let token = issue_hs256(SECRET, "user-1", Duration::from_secs(60));
        for value in [
            format!("Basic {token}"),
            token.clone(),
            "Bearer ".into(),
            "Bearer not.a.jwt".into(),
        ] {
            let err = Verifier::hs256(SECRET).authenticate(&headers(&value));
            assert_eq!(err, Err(AuthError::Unauthorized), "accepted {value:?}");
        }
    }

    #[test]
    fn token_signed_with_another_secret_is_unauthorized() {
        let token = issue_hs256(
            b"another-secret-another-secret-xx",
            "u",
            Duration::from_secs(60),
        );
        let err = Verifier::hs256(SECRET).authenticate(&headers(&format!("Bearer {token}")));
        assert_eq!(err, Err(AuthError::Unauthorized));
    }

    #[test]
    fn expired_token_is_reported_as_expired() {
        let token = sign(serde_json::json!({"sub": "u", "exp": now() - 3600}), SECRET);
        let err = Verifier::hs256(SECRET).authenticate(&headers(&format!("Bearer {token}")));
        assert_eq!(err, Err(AuthError::Expired));
    }

    #[test]
    fn token_without_exp_or_sub_is_unauthorized() {
        for claims in [
            serde_json::json!({"sub": "u"}),
            serde_json::json!({"exp": now() + 60}),
            serde_json::json!({"sub": "", "exp": now() + 60}),
            serde_json::json!({"sub": 42, "exp": now() + 60}),
        ] {
            let token = sign(claims.clone(), SECRET);
            let err = Verifier::hs256(SECRET).authenticate(&headers(&format!("Bearer {token}")));
            assert_eq!(err, Err(AuthError::Unauthorized), "accepted {claims}");
        }
    }

    #[test]
    fn unsigned_none_algorithm_token_is_unauthorized() {
        use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD.encode(format!(r#"{{"sub":"u","exp":{}}}"#, now() + 60));
        let err =
            Verifier::hs256(SECRET).authenticate(&headers(&format!("Bearer {header}.{payload}.")));
        assert_eq!(err, Err(AuthError::Unauthorized));
    }
}
