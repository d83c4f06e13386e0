//! What must hold after the run, whatever failed during it, read from the database.

use std::time::Duration;

use tokio_postgres::NoTls;

use crate::record::Record;

/// The invariants checked, and those violated.
#[derive(Debug, Default)]
pub struct Outcome {
    pub checked: Vec<String>,
    pub violations: Vec<String>,
}

impl Outcome {
    fn check(&mut self, what: &str, violation: Option<String>) {
        self.checked.push(what.to_owned());
        if let Some(violation) = violation {
            self.violations.push(format!("{what}: {violation}"));
        }
    }
}

/// Waits for the leases of turns still running (cut short by the run's end) to be released
/// or to lapse, then checks.
pub async fn run(database_url: &str, record: &Record) -> Outcome {
    let (client, connection) = tokio_postgres::connect(database_url, NoTls)
        .await
        .expect("the load's database is reachable");
    tokio::spawn(connection);
    let count = |sql: &'static str| {
        let client = &client;
        async move {
            client
                .query_one(sql, &[])
                .await
                .map(|row| row.get::<_, i64>(0))
                .unwrap_or(-1)
        }
    };
    // A turn outlives its request by at most its deadline; a killed one's lease lapses after
    // deadline + margin (30 s).
    let mut held = -1;
    for _ in 0..45 {
        held = count("SELECT count(*) FROM conversations WHERE turn_lease_until > now()").await;
        if held == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    let mut outcome = Outcome::default();
    let acked: Vec<uuid::Uuid> = record
        .acks
        .iter()
        .filter_map(|ack| ack.assistant_message_id.parse().ok())
        .collect();
    let stored = client
        .query_one(
            "SELECT count(*) FROM messages WHERE id = ANY($1)",
            &[&acked],
        )
        .await
        .map(|row| row.get::<_, i64>(0))
        .unwrap_or(-1);
    outcome.check(
        "every acknowledged turn's answer stored, once",
        (stored != acked.len() as i64 || acked.len() != record.acks.len())
            .then(|| format!("{} acknowledged, {stored} stored", record.acks.len())),
    );
    outcome.check(
        "every keyed retry answered with the stored turn",
        (record.retries_mismatched > 0).then(|| {
            format!(
                "{} of {} differed",
                record.retries_mismatched, record.retries
            )
        }),
    );
    let titles: Vec<String> = record
        .acks
        .iter()
        .filter_map(|ack| ack.task_title.clone())
        .collect();
    let found = client
        .query_one(
            "SELECT count(DISTINCT title) FROM tasks WHERE title = ANY($1)",
            &[&titles],
        )
        .await
        .map(|row| row.get::<_, i64>(0))
        .unwrap_or(-1);
    outcome.check(
        "every acknowledged tool turn's task exists",
        (found != titles.len() as i64)
            .then(|| format!("{} acknowledged, {found} found", titles.len())),
    );
    let twice = count(
        "SELECT count(*) FROM (SELECT user_id, title FROM tasks GROUP BY user_id, title
                               HAVING count(*) > 1) AS twice",
    )
    .await;
    outcome.check(
        "no task added twice (each tool turn names a task of its own)",
        (twice != 0).then(|| format!("{twice} titles stored more than once")),
    );
    let gaps = count(
        "SELECT count(*) FROM conversations c
         WHERE c.message_count <> (SELECT count(*) FROM messages m
                                   WHERE m.conversation_id = c.id AND m.branch_id IS NULL)
            OR c.message_count <> (SELECT coalesce(max(seq), 0) FROM messages m
                                   WHERE m.conversation_id = c.id AND m.branch_id IS NULL)",
    )
    .await;
    outcome.check(
        "every conversation's messages numbered 1..message_count without gaps",
        (gaps != 0).then(|| format!("{gaps} conversations")),
    );
    outcome.check(
        "no lease left held once the last turns ended",
        (held != 0).then(|| format!("{held} conversations still claimed")),
    );
    let running = count("SELECT count(*) FROM turns WHERE status = 'running'").await;
    outcome.check(
        "no keyed turn left marked running",
        (running != 0).then(|| format!("{running} turns")),
    );
    let errors = record.server_errors();
    outcome.check(
        "no 500 answered",
        (errors != 0).then(|| format!("{errors} answers were 500")),
    );
    outcome
}
