//! A database that stops answering costs a request seconds, never its whole timeout: behind
//! PgBouncer in transaction mode (Neon's pooler queues queries for up to 120 s) and over a
//! connection that goes silent mid-request. Then the next request after recovery succeeds.

use std::time::{Duration, Instant};

use serde_json::json;
use todo_chat::db::{CANCEL_TIMEOUT, DbError};
use tokio_postgres::types::Type;
use wiremock::ResponseTemplate;

use crate::helpers::{
    Bouncer, Captured, Cluster, StallingProxy, TestApp, capture_logs, completion,
};

/// Small bounds so the tests are quick; production uses the defaults (4 s and 2 s).
const ACQUIRE_MS: u64 = 2000;
const STATEMENT_MS: u64 = 1000;

fn bounded(database_url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("DATABASE_URL", database_url.to_owned()),
        ("DB_POOL_SIZE", "1".to_owned()),
        ("DB_CONNECT_TIMEOUT_MS", ACQUIRE_MS.to_string()),
        ("DB_STATEMENT_TIMEOUT_MS", STATEMENT_MS.to_string()),
    ]
}

/// The documented bound on a request whose database stops answering: acquire + one
/// statement + the cancel request, plus slack for a slow test machine.
fn bound() -> Duration {
    Duration::from_millis(ACQUIRE_MS + STATEMENT_MS) + CANCEL_TIMEOUT + Duration::from_secs(1)
}

fn settings<'a>(pairs: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    pairs.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

#[tokio::test]
#[ignore = "starts its own Postgres and PgBouncer; `make test` runs it"]
async fn an_outage_behind_the_transaction_pooler_answers_503_within_the_bound_and_recovers() {
    let harness = TestApp::spawn().await;
    harness.llm_replies("ok").await;
    let cluster = Cluster::start();
    cluster.create_database("app").await;
    let direct = harness.variant(&[("DATABASE_URL", &cluster.url("app"))]);
    todo_chat::db::migrate(&direct.db).await.unwrap();
    let bouncer = Bouncer::start(cluster.port(), false);
    let pooled = bounded(&bouncer.url("app"));
    let app = harness.variant(&settings(&pooled));
    let before = harness
        .chat_on(&app, "alice", json!({"message": "before"}))
        .await;

    cluster.stop();
    let started = Instant::now();
    let during = harness
        .chat_on(&app, "alice", json!({"message": "during"}))
        .await;
    let took = started.elapsed();
    let health = harness.health_on(&app).await;
    cluster.resume();
    // PgBouncer retries its server login every second (server_login_retry).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after = harness
        .chat_on(&app, "alice", json!({"message": "after"}))
        .await;

    assert_eq!(before.status, 200, "{}", before.body);
    assert_eq!(during.status, 503, "{}", during.body);
    assert_eq!(during.body["error"], "database_unavailable");
    assert!(
        took < bound(),
        "answered after {took:?}, over {:?}",
        bound()
    );
    // The pooler queued the query rather than refusing it: the bound is what answered.
    assert!(took >= Duration::from_millis(STATEMENT_MS), "{took:?}");
    assert_eq!(health.status, 503, "{}", health.body);
    assert_eq!(after.status, 200, "{}", after.body);
    assert_eq!(harness.health_on(&app).await.status, 200);
}

#[tokio::test]
async fn a_connection_that_goes_silent_mid_turn_answers_503_within_the_bound_and_frees_the_conversation()
 {
    let harness = TestApp::spawn().await;
    let proxy = StallingProxy::start(&harness.database_url).await;
    let app = harness.variant(&settings(&bounded(&proxy.url)));
    let model_time = Duration::from_millis(600);
    harness
        .llm_responds(
            ResponseTemplate::new(200)
                .set_body_json(completion("slow"))
                .set_delay(model_time),
        )
        .await;

    // The connection goes silent while the model is thinking; storing the reply then hangs.
    let started = Instant::now();
    let (silent, ()) = tokio::join!(
        harness.chat_on(&app, "alice", json!({"message": "first"})),
        async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            proxy.stall_open_connections();
        }
    );
    let took = started.elapsed();
    let conversation_id: uuid::Uuid = harness
        .db()
        .await
        .query_one("SELECT id FROM conversations WHERE user_id = 'alice'", &[])
        .await
        .unwrap()
        .get(0);
    let next = harness
        .chat_on(
            &app,
            "alice",
            json!({"message": "second", "conversation_id": conversation_id}),
        )
        .await;

    assert_eq!(silent.status, 503, "{}", silent.body);
    assert_eq!(silent.body["error"], "database_unavailable");
    // The model's time, one overrun statement and its cancel, and the lease release.
    let limit = model_time + bound() + Duration::from_secs(1);
    assert!(took < limit, "answered after {took:?}, over {limit:?}");
    // The lease was released (a held one would answer 409) and a fresh connection serves.
    assert_eq!(next.status, 200, "{}", next.body);
}

#[tokio::test]
async fn a_rejected_statement_is_described_by_its_sqlstate_never_by_the_values_it_quotes() {
    let harness = TestApp::spawn().await;
    let client = harness.app.db.get().await.unwrap();

    let error = client
        .query("SELECT $1::uuid", &[(&"secret-value-4921", Type::TEXT)])
        .await
        .unwrap_err();

    let logged = error.to_string();
    assert!(
        logged.contains("sqlstate 22P02 (data_exception)"),
        "{logged}"
    );
    assert!(!logged.contains("4921"), "{logged}");
}

#[tokio::test]
async fn a_terminated_backend_is_described_as_unavailable_by_its_sqlstate_and_class() {
    let harness = TestApp::spawn().await;
    let client = harness.app.db.get().await.unwrap();

    let error = client
        .query("SELECT pg_terminate_backend(pg_backend_pid())", &[])
        .await
        .unwrap_err();

    assert!(matches!(error, DbError::Unavailable(_)), "{error:?}");
    assert_eq!(
        error.to_string(),
        "database unavailable: sqlstate 57P01 (operator_intervention)"
    );
}

/// The `error` field of every "database unavailable" line logged so far.
fn unavailable_lines(logs: &Captured) -> Vec<String> {
    logs.text()
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|line| line["message"] == "database unavailable")
        .map(|line| line["error"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
#[ignore = "starts its own Postgres and PgBouncer and captures the process's logs; `make test` runs it"]
async fn a_pooler_that_refuses_logins_or_startup_options_is_logged_by_sqlstate_and_class() {
    let harness = TestApp::spawn().await;
    let cluster = Cluster::start();
    cluster.create_database("app").await;
    let bouncer = Bouncer::start(cluster.port(), false);
    let with_options = format!(
        "{}&options=-c%20statement_timeout%3D1000",
        bouncer.url("app")
    );
    let (logs, _logging) = capture_logs();

    // Neon's pooler rejects startup options (its docs say to set timeouts otherwise).
    let options = harness
        .health_on(&harness.variant(&settings(&bounded(&with_options))))
        .await;
    let pooled = harness.variant(&settings(&bounded(&bouncer.url("app"))));
    let before = harness.health_on(&pooled).await;
    cluster.stop();
    // After a failed server login PgBouncer refuses new clients of a pool it has served for
    // `server_login_retry`; the first request may instead time out while a login is tried.
    let outage = harness.variant(&settings(&bounded(&bouncer.url("app"))));
    let mut refused = false;
    for _ in 0..5 {
        assert_eq!(harness.health_on(&outage).await.status, 503);
        refused = unavailable_lines(&logs)
            .iter()
            .any(|line| line.contains("sqlstate 08P01 (pooler_login_failing)"));
        if refused {
            break;
        }
    }

    assert_eq!(options.status, 503, "{}", options.body);
    assert_eq!(before.status, 200, "{}", before.body);
    let lines = unavailable_lines(&logs);
    assert!(
        lines[0].contains("sqlstate 08P01 (pooler_startup_parameter_rejected)"),
        "{lines:?}"
    );
    assert!(
        refused,
        "no line names the pooler's refused logins: {lines:?}"
    );
}
