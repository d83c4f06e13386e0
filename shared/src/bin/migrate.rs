//! Applies pending migrations to `DATABASE_URL`: `cargo run -p todo-chat --bin migrate`.

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("DATABASE_URL").map_err(|_| "DATABASE_URL must be set")?;
    let timeouts = todo_chat::db::Timeouts {
        acquire: std::time::Duration::from_secs(30),
        ..Default::default()
    };
    let pool = todo_chat::db::pool(&url, 1, native_tls::TlsConnector::new()?, timeouts)?;
    let applied = todo_chat::db::migrate(&pool).await?;
    if applied.is_empty() {
        println!("migrations: database is up to date");
    }
    for name in applied {
        println!("migrations: applied {name}");
    }
    Ok(())
}
