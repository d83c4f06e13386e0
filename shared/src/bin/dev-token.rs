//! Prints an HS256 token for a user, signed with `BETTER_AUTH_SECRET`, for local development:
//! `cargo run -p todo-chat --bin dev-token -- [user_id] [hours]`.

use std::time::Duration;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let secret =
        std::env::var("BETTER_AUTH_SECRET").map_err(|_| "BETTER_AUTH_SECRET must be set")?;
    let mut args = std::env::args().skip(1);
    let user = args.next().unwrap_or_else(|| "demo-user".into());
    let hours: u64 = args.next().map_or(Ok(24), |h| h.parse())?;
    let token =
        todo_chat::auth::issue_hs256(secret.as_bytes(), &user, Duration::from_secs(hours * 3600));
    println!("{token}");
    Ok(())
}
