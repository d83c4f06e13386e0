//! Sharing a running turn with other instances through Postgres: its stream, stored in
//! batches for followers that reload, and the stop a user may ask from anywhere.

use std::{convert::Infallible, time::Duration};

use tokio::{sync::watch, time::Instant};
use uuid::Uuid;

use crate::{
    agent,
    auth::UserId,
    db::{self, streams::Batch},
};

/// How often the stream written since the last batch is stored: at most ten rows a second
/// per streamed turn, whatever the model's pace.
pub const RELAY_EVERY: Duration = Duration::from_millis(100);
/// How often the stop flag is read when there is nothing to store (a JSON turn, a quiet
/// model): a stop is seen within this, then the turn ends at once.
const STOP_CHECK_EVERY: Duration = Duration::from_millis(300);

/// Who watches a turn run: its events as they happen and, for a streamed turn, the bytes
/// that followers on other instances replay.
pub trait Audience: agent::Observer {
    /// What was sent since the last stored batch, as the next batch; `None` when nothing is
    /// new (always, for a JSON turn).
    fn unrelayed(&self) -> Option<Batch> {
        None
    }

    /// `batch` (from [`Audience::unrelayed`]) was stored.
    fn relayed(&self, _batch: &Batch) {}
}

impl Audience for agent::Silent {}

/// Relays `turn_id`'s stream from `audience` until dropped, and sends `true` on `stop` once
/// a stop is asked. A failed write is retried with the next batch; the turn goes on.
pub(super) async fn relay(
    client: &db::Client,
    user: &UserId,
    turn_id: Uuid,
    conversation_id: Uuid,
    audience: &dyn Audience,
    stop: watch::Sender<bool>,
) -> Infallible {
    let mut checked = Instant::now();
    loop {
        tokio::time::sleep(RELAY_EVERY).await;
        let batch = audience.unrelayed();
        if batch.is_none() && checked.elapsed() < STOP_CHECK_EVERY {
            continue;
        }
        checked = Instant::now();
        match db::streams::relay(client, user, turn_id, conversation_id, batch.as_ref()).await {
            Ok(stop_asked) => {
                if let Some(batch) = &batch {
                    audience.relayed(batch);
                }
                if stop_asked {
                    stop.send_replace(true);
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not relay the turn's stream"),
        }
    }
}
