//! Token verification in both modes, against the chat endpoint: Better Auth's shared secret
//! (HS256) and its JWKS (EdDSA), with issuer and audience checks.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use lambda_http::http::Method;
use serde_json::{Value, json};
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{method, path},
};

use crate::helpers::{SECRET, TestApp, TestResponse};

const ED_KEY: &[u8] = include_bytes!("fixtures/ed25519.pem");
const ED_OTHER_KEY: &[u8] = include_bytes!("fixtures/ed25519-other.pem");
const ED_PUBLIC_PEM: &[u8] = include_bytes!("fixtures/ed25519.pub.pem");
const JWKS: &str = include_str!("fixtures/jwks.json");

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn valid_claims() -> Value {
    json!({"sub": "alice", "exp": now() + 600, "iat": now()})
}

fn hs256(claims: &Value, secret: &[u8]) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .unwrap()
}

fn eddsa(claims: &Value, key: &[u8], kid: Option<&str>) -> String {
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_ed_pem(key).unwrap()).unwrap()
}

/// An unsigned token, as an attacker would send with `alg: none`.
fn unsigned(claims: &Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    format!("{header}.{}.", URL_SAFE_NO_PAD.encode(claims.to_string()))
}

/// The token with its payload swapped for `claims`, signature kept.
fn tampered(token: &str, claims: &Value) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        parts[2]
    )
}

async fn chat_as(app: &TestApp, authorization: &str) -> TestResponse {
    let request = app
        .request(
            Method::POST,
            "/api/alice/chat",
            json!({"message": "hi"}).to_string(),
        )
        .header("authorization", authorization)
        .path_params(&[("user_id", "alice")]);
    app.send_chat(request.0).await
}

async fn assert_rejected(app: &TestApp, cases: Vec<(&str, String, u16, &str)>) {
    for (case, token, status, code) in cases {
        let res = chat_as(app, &format!("Bearer {token}")).await;
        assert_eq!(res.status, status, "{case}: {}", res.body);
        assert_eq!(res.body["error"], code, "{case}");
        // A 401 says why in one code and nothing more.
        if status == 401 {
            let keys: Vec<&String> = res.body.as_object().unwrap().keys().collect();
            assert_eq!(keys, ["error", "message", "request_id"], "{case}");
        }
    }
    assert_eq!(
        app.count("messages").await,
        0,
        "a rejected token wrote something"
    );
}

/// Attacks every mode must refuse; `valid` signs claims the way the mode expects.
fn common_cases(
    valid: impl Fn(&Value) -> String,
) -> Vec<(&'static str, String, u16, &'static str)> {
    let mut no_exp = valid_claims();
    no_exp.as_object_mut().unwrap().remove("exp");
    let mut string_exp = valid_claims();
    string_exp["exp"] = json!((now() + 600).to_string());
    let mut expired = valid_claims();
    expired["exp"] = json!(now() - 120);
    let mut other_user = valid_claims();
    other_user["sub"] = json!("mallory");
    vec![
        (
            "none algorithm",
            unsigned(&valid_claims()),
            401,
            "unauthorized",
        ),
        (
            "expired beyond leeway",
            valid(&expired),
            401,
            "token_expired",
        ),
        ("exp missing", valid(&no_exp), 401, "unauthorized"),
        ("exp a string", valid(&string_exp), 401, "unauthorized"),
        (
            "tampered payload",
            tampered(&valid(&valid_claims()), &other_user),
            401,
            "unauthorized",
        ),
        (
            "sub not the path user",
            valid(&other_user),
            403,
            "forbidden",
        ),
        ("garbage", "not.a.token".into(), 401, "unauthorized"),
        ("empty segments", "..".into(), 401, "unauthorized"),
        ("binary noise", "%%%$$$".into(), 401, "unauthorized"),
    ]
}

#[tokio::test]
async fn shared_secret_mode_accepts_hs256_and_refuses_every_attack() {
    let app = TestApp::spawn().await;
    app.llm_replies("ok").await;
    let mut within_leeway = valid_claims();
    within_leeway["exp"] = json!(now() - 10);

    let mut cases = common_cases(|claims| hs256(claims, SECRET.as_bytes()));
    cases.push((
        "EdDSA token",
        eddsa(&valid_claims(), ED_KEY, Some("test-key-1")),
        401,
        "unauthorized",
    ));
    cases.push((
        "other secret",
        hs256(&valid_claims(), b"x".repeat(40).as_slice()),
        401,
        "unauthorized",
    ));
    assert_rejected(&app, cases).await;

    let res = chat_as(
        &app,
        &format!("Bearer {}", hs256(&within_leeway, SECRET.as_bytes())),
    )
    .await;
    assert_eq!(
        res.status, 200,
        "a token expired within the leeway is accepted"
    );
}

#[tokio::test]
async fn issuer_and_audience_are_required_when_configured() {
    let app = TestApp::spawn_with(&[
        ("JWT_ISSUER", "https://auth.example.com"),
        ("JWT_AUDIENCE", "todo-chat"),
    ])
    .await;
    app.llm_replies("ok").await;
    let with = |iss: Option<&str>, aud: Option<&str>| {
        let mut claims = valid_claims();
        if let Some(iss) = iss {
            claims["iss"] = json!(iss);
        }
        if let Some(aud) = aud {
            claims["aud"] = json!(aud);
        }
        hs256(&claims, SECRET.as_bytes())
    };

    assert_rejected(
        &app,
        vec![
            ("no iss", with(None, Some("todo-chat")), 401, "unauthorized"),
            (
                "wrong iss",
                with(Some("https://evil.example.com"), Some("todo-chat")),
                401,
                "unauthorized",
            ),
            (
                "no aud",
                with(Some("https://auth.example.com"), None),
                401,
                "unauthorized",
            ),
            (
                "wrong aud",
                with(Some("https://auth.example.com"), Some("other-app")),
                401,
                "unauthorized",
            ),
        ],
    )
    .await;
    let ok = chat_as(
        &app,
        &format!(
            "Bearer {}",
            with(Some("https://auth.example.com"), Some("todo-chat"))
        ),
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
}

async fn jwks_server() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/auth/jwks"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(JWKS, "application/json"))
        .mount(&server)
        .await;
    server
}

async fn jwks_app(jwks: &MockServer) -> TestApp {
    jwks_app_at(&format!("{}/api/auth/jwks", jwks.uri())).await
}

async fn jwks_app_at(url: &str) -> TestApp {
    TestApp::spawn_with(&[("JWKS_URL", url), ("BETTER_AUTH_SECRET", "")]).await
}

#[tokio::test]
async fn jwks_mode_accepts_eddsa_from_the_key_set_and_refuses_every_attack() {
    let jwks = jwks_server().await;
    let app = jwks_app(&jwks).await;
    app.llm_replies("ok").await;
    let public_x = URL_SAFE_NO_PAD
        .decode(
            serde_json::from_str::<Value>(JWKS).unwrap()["keys"][0]["x"]
                .as_str()
                .unwrap(),
        )
        .unwrap();

    let mut cases = common_cases(|claims| eddsa(claims, ED_KEY, Some("test-key-1")));
    cases.extend([
        (
            "HS256 with the auth secret",
            hs256(&valid_claims(), SECRET.as_bytes()),
            401,
            "unauthorized",
        ),
        (
            "HS256 keyed with the public key bytes",
            hs256(&valid_claims(), &public_x),
            401,
            "unauthorized",
        ),
        (
            "HS256 keyed with the public key PEM",
            hs256(&valid_claims(), ED_PUBLIC_PEM),
            401,
            "unauthorized",
        ),
        (
            "unknown kid",
            eddsa(&valid_claims(), ED_OTHER_KEY, Some("rotated-away")),
            401,
            "unauthorized",
        ),
        (
            "known kid, wrong key",
            eddsa(&valid_claims(), ED_OTHER_KEY, Some("test-key-1")),
            401,
            "unauthorized",
        ),
    ]);
    assert_rejected(&app, cases).await;

    let ok = chat_as(
        &app,
        &format!(
            "Bearer {}",
            eddsa(&valid_claims(), ED_KEY, Some("test-key-1"))
        ),
    )
    .await;
    let without_kid = chat_as(
        &app,
        &format!("Bearer {}", eddsa(&valid_claims(), ED_KEY, None)),
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(
        without_kid.status, 200,
        "a single-key set serves tokens without kid"
    );
}

#[tokio::test]
async fn the_key_set_is_fetched_once_and_unknown_kids_do_not_hammer_it() {
    let jwks = jwks_server().await;
    let app = jwks_app(&jwks).await;
    app.llm_replies("ok").await;

    for _ in 0..3 {
        chat_as(
            &app,
            &format!(
                "Bearer {}",
                eddsa(&valid_claims(), ED_OTHER_KEY, Some("unknown"))
            ),
        )
        .await;
        chat_as(
            &app,
            &format!(
                "Bearer {}",
                eddsa(&valid_claims(), ED_KEY, Some("test-key-1"))
            ),
        )
        .await;
    }

    assert_eq!(jwks.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn an_unreachable_key_set_is_503_auth_unavailable() {
    let app = TestApp::spawn_with(&[
        ("JWKS_URL", "http://127.0.0.1:9/jwks"),
        ("BETTER_AUTH_SECRET", ""),
    ])
    .await;

    let res = chat_as(
        &app,
        &format!(
            "Bearer {}",
            eddsa(&valid_claims(), ED_KEY, Some("test-key-1"))
        ),
    )
    .await;

    assert_eq!(res.status, 503);
    assert_eq!(res.body["error"], "auth_unavailable");
}

/// A `Bearer` header with a valid EdDSA token signed by the key set's key.
fn key_set_token() -> String {
    format!(
        "Bearer {}",
        eddsa(&valid_claims(), ED_KEY, Some("test-key-1"))
    )
}

#[tokio::test]
async fn a_failed_first_key_set_fetch_is_503_until_a_fetch_succeeds_never_401() {
    let jwks = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(1)
        .mount(&jwks)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(JWKS, "application/json"))
        .mount(&jwks)
        .await;
    let app = jwks_app_at(&jwks.uri()).await;
    app.llm_replies("ok").await;

    let failed = chat_as(&app, &key_set_token()).await;
    let right_after = chat_as(&app, &key_set_token()).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let recovered = chat_as(&app, &key_set_token()).await;

    assert_eq!(failed.status, 503, "{}", failed.body);
    assert_eq!(failed.body["error"], "auth_unavailable");
    // A valid token is never called invalid because the keys could not be fetched.
    assert_eq!(right_after.status, 503, "{}", right_after.body);
    assert_eq!(right_after.body["error"], "auth_unavailable");
    assert_eq!(recovered.status, 200, "{}", recovered.body);
    assert_eq!(jwks.received_requests().await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_key_removed_from_the_set_stops_verifying_once_the_sets_cache_lifetime_ends() {
    let jwks = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(JWKS, "application/json")
                .insert_header("cache-control", "public, max-age=1"),
        )
        .up_to_n_times(1)
        .mount(&jwks)
        .await;
    // The key was rotated out.
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(r#"{"keys": []}"#, "application/json")
                .insert_header("cache-control", "public, max-age=1"),
        )
        .mount(&jwks)
        .await;
    let app = jwks_app_at(&jwks.uri()).await;
    app.llm_replies("ok").await;

    let before = chat_as(&app, &key_set_token()).await;
    let within_lifetime = chat_as(&app, &key_set_token()).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let after = chat_as(&app, &key_set_token()).await;

    assert_eq!(before.status, 200, "{}", before.body);
    assert_eq!(within_lifetime.status, 200, "{}", within_lifetime.body);
    assert_eq!(after.status, 401, "{}", after.body);
    assert_eq!(jwks.received_requests().await.unwrap().len(), 2);
}
