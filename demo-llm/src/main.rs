//! `demo-llm [PORT]`: serves the demo model on 127.0.0.1:PORT (default 9100) until killed.
//! `DEMO_LLM_PACE_MS` sets the pause before each streamed chunk (default 0);
//! `DEMO_LLM_REASONING=1` makes it a reasoning model (default off); `DEMO_LLM_FAIL_EVERY=N`
//! and `DEMO_LLM_STALL_EVERY=N` answer every N-th request with 503 or never (`make load`).

use std::{net::SocketAddr, time::Duration};

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let port = match std::env::args().nth(1) {
        Some(port) => port.parse().expect("PORT must be a number"),
        None => 9100,
    };
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await?;
    println!(
        "demo-llm: listening on http://{}/v1",
        listener.local_addr()?
    );
    let pace = std::env::var("DEMO_LLM_PACE_MS")
        .ok()
        .and_then(|ms| ms.parse().ok())
        .map_or(Duration::ZERO, Duration::from_millis);
    let reasoning = std::env::var("DEMO_LLM_REASONING").is_ok_and(|v| v == "1");
    let every = |name: &str| {
        std::env::var(name)
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    let faults = demo_llm::server::Faults {
        fail_every: every("DEMO_LLM_FAIL_EVERY"),
        stall_every: every("DEMO_LLM_STALL_EVERY"),
    };
    let style = demo_llm::server::Style {
        pace,
        reasoning,
        faults,
    };
    demo_llm::server::serve(listener, style).await
}
