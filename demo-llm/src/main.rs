//! `demo-llm [PORT]`: serves the demo model on 127.0.0.1:PORT (default 9100) until killed.

use std::net::SocketAddr;

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
    demo_llm::server::serve(listener).await
}
