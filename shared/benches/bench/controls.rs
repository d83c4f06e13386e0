//! The chat's controls over a running turn, in process: how far a follower on another
//! instance lags the producer's own stream, what relaying the stream writes, and how soon a
//! stop ends a turn. Against the demo model paced as a real model writes.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use http_body_util::BodyExt;
use lambda_http::{Body, http::Method};
use serde_json::json;
use todo_chat::{App, api};

use crate::{Bench, MODEL_PACE_MS, USER, build_app, ms, percentile};

/// Turns followed, and turns stopped.
const FOLLOWED: usize = 5;
const STOPPED: usize = 10;

/// Each text delta of a stream, with when it arrived.
type Deltas = Vec<(String, Duration)>;

/// Reads `body` to its end: its text-delta chunks with their arrival times since `start`.
async fn deltas(mut body: todo_chat::http::ResponseBody, start: Instant) -> Deltas {
    let mut seen = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(bytes) = frame.unwrap().into_data() else {
            continue;
        };
        let at = start.elapsed();
        for event in String::from_utf8_lossy(&bytes).split("\n\n") {
            if event.contains("\"type\":\"text-delta\"") {
                seen.push((event.to_owned(), at));
            }
        }
    }
    seen
}

impl Bench {
    fn control_request(
        &self,
        method: Method,
        conversation: &str,
        what: &str,
    ) -> lambda_http::Request {
        self.request(
            method,
            &format!("/api/chat/{conversation}/{what}"),
            &[("id", conversation)],
            Body::Empty,
        )
    }

    /// Starts a streamed turn on `producer`: its conversation and the rest of its body.
    async fn start_streamed_turn(
        &self,
        producer: &Arc<App>,
    ) -> (String, todo_chat::http::ResponseBody) {
        let body = json!({"message": "hello there", "conversation_id": null}).to_string();
        let mut request = self.request(
            Method::POST,
            &format!("/api/{USER}/chat"),
            &[("user_id", USER)],
            body.into(),
        );
        request
            .headers_mut()
            .insert("accept", "text/event-stream".parse().unwrap());
        let mut body = api::chat::handle_streaming(producer.clone(), request)
            .await
            .into_body();
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        let start: serde_json::Value = serde_json::from_slice(
            first
                .strip_prefix(b"data: ")
                .unwrap()
                .split(|b| *b == b'\n')
                .next()
                .unwrap(),
        )
        .unwrap();
        let conversation = start["messageMetadata"]["conversation_id"]
            .as_str()
            .unwrap();
        (conversation.to_owned(), body)
    }

    pub(crate) async fn controls(&mut self) {
        eprintln!("following and stopping a running turn (paced model, two instances)");
        let paced = demo_llm::server::spawn(demo_llm::server::Style::paced(Duration::from_millis(
            MODEL_PACE_MS,
        )));
        let producer = Arc::new(build_app(&self.database_url, &paced));
        let other = Arc::new(build_app(&self.database_url, &paced));
        let db = crate::connect(&self.database_url).await;

        let (mut lags, mut rows_per_second) = (Vec::new(), Vec::new());
        for _ in 0..FOLLOWED {
            let start = Instant::now();
            let (conversation, body) = self.start_streamed_turn(&producer).await;
            let follow = api::chat_controls::follow(
                other.clone(),
                self.control_request(Method::GET, &conversation, "stream"),
            )
            .await;
            let (produced, followed) =
                tokio::join!(deltas(body, start), deltas(follow.into_body(), start));
            let took = start.elapsed();
            assert_eq!(
                produced.len(),
                followed.len(),
                "the follower saw every delta"
            );
            for ((sent, at), (seen, then)) in produced.iter().zip(&followed) {
                assert_eq!(sent, seen);
                lags.push(then.saturating_sub(*at));
            }
            let id: uuid::Uuid = conversation.parse().unwrap();
            let rows: i64 = db
                .query_one(
                    "SELECT count(*) FROM turn_streams WHERE conversation_id = $1",
                    &[&id],
                )
                .await
                .unwrap()
                .get(0);
            rows_per_second.push(rows as f64 / took.as_secs_f64());
        }
        let (p50, p90, p99) = (
            percentile(&mut lags, 0.5),
            percentile(&mut lags, 0.9),
            percentile(&mut lags, 0.99),
        );
        self.row(
            format!("a reload's follower on another instance: lag of each text delta behind the producer's own stream, p50 / p90 / p99 ({} deltas)", lags.len()),
            format!("{} / {} / {}", ms(p50), ms(p90), ms(p99)),
            "p50 ≤ 300 ms",
            Some(p50 <= Duration::from_millis(300)),
        );
        let most = rows_per_second.iter().cloned().fold(0.0, f64::max);
        self.row(
            "stream batches the producer writes per second of a streamed turn (most of any turn)",
            format!("{most:.1}"),
            "≤ 10 (one per 100 ms)",
            Some(most <= 10.5),
        );

        let mut ends = Vec::new();
        for _ in 0..STOPPED {
            let (conversation, body) = self.start_streamed_turn(&producer).await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            let asked = Instant::now();
            let stopped = api::chat_controls::stop(
                &other,
                self.control_request(Method::POST, &conversation, "stop"),
            )
            .await;
            assert_eq!(stopped.status(), 202);
            body.collect().await.unwrap();
            ends.push(asked.elapsed());
        }
        let (p50, max) = (percentile(&mut ends, 0.5), percentile(&mut ends, 1.0));
        self.row(
            "stop from another instance: until the producer's stream ended (abort), p50 / max",
            format!("{} / {}", ms(p50), ms(max)),
            "max ≤ 1 s",
            Some(max <= Duration::from_secs(1)),
        );
    }
}
