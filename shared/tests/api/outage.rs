//! A database that stops answering costs a request seconds, never its whole timeout: behind
//! PgBouncer in transaction mode (Neon's pooler queues queries for up to 120 s) and over a
//! connection that goes silent mid-request. Then the next request after recovery succeeds.

use std::time::{Duration, Instant};

use serde_json::json;
use todo_chat::db::CANCEL_TIMEOUT;
use wiremock::ResponseTemplate;

use crate::helpers::{Bouncer, Cluster, StallingProxy, TestApp, completion};

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
