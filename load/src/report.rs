//! The run's report: a Markdown section of `BENCHMARKS.md`, from what the users saw, the
//! faults injected and the invariants checked.

use std::{collections::BTreeMap, time::Duration};

use goose::metrics::GooseMetrics;

use crate::{Settings, checks::Outcome, faults::Injected, record::Record};

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[at]
}

/// The run's report, as a Markdown section of `BENCHMARKS.md`.
pub fn report(
    settings: &Settings,
    record: &Record,
    injected: &Injected,
    outcome: &Outcome,
    metrics: &GooseMetrics,
    elapsed: Duration,
) -> String {
    let mut out = String::from("## Load test (`make load`)\n\n");
    out.push_str(&format!(
        "Written by `make load` on {} cores: {} simulated users (goose {}) for {} s, against the \
         functions served by `cargo lambda watch` (`make dev`'s debug builds, up to {} instances \
         each, the chat's all started before the run), through PgBouncer \
         (transaction mode, TLS) to a local Postgres 15; the demo model takes 1 to 3 s per \
         answer (told by each message), answers every 40th request 503 and leaves every 150th \
         unanswered. Each user waits 15 to 45 s between its actions, which keeps the offered \
         turns under what the emulator's instances carry (Lambda would scale out further): \
         past that, a turn's overhead is mostly its wait for a free instance. Faults injected: \
         {}. The whole run took {:.0} s.\n\n",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        settings.users,
        "0.18",
        settings.seconds,
        settings.instances,
        injected.describe(),
        elapsed.as_secs_f64(),
    ));
    out.push_str("| measure | figure |\n| --- | --- |\n");
    let seconds = settings.seconds as f64;
    out.push_str(&format!(
        "| turns acknowledged (JSON 200 or stream `finish`), per second | {} ({:.1}/s) |\n",
        record.acks.len(),
        record.acks.len() as f64 / seconds
    ));
    let requests: usize = metrics
        .requests
        .values()
        .map(|r| r.success_count + r.fail_count)
        .sum();
    out.push_str(&format!(
        "| HTTP requests, per second | {requests} ({:.1}/s) |\n",
        requests as f64 / seconds
    ));
    let mut kinds: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for turn in &record.turns {
        let overhead = turn.total.saturating_sub(turn.paced).as_secs_f64() * 1000.0;
        kinds.entry(turn.kind.as_str()).or_default().push(overhead);
    }
    for (kind, mut overheads) in kinds {
        overheads.sort_by(f64::total_cmp);
        out.push_str(&format!(
            "| {kind}: our overhead (total less the model's time), p50 / p99 ({} turns) | {:.1} ms / {:.1} ms |\n",
            overheads.len(),
            percentile(&overheads, 0.5),
            percentile(&overheads, 0.99)
        ));
    }
    let answers: Vec<String> = record
        .statuses
        .iter()
        .map(|(key, n)| format!("{key}: {n}"))
        .collect();
    out.push_str(&format!(
        "| answers by status and code (0: no HTTP answer) | {} |\n",
        answers.join(", ")
    ));
    out.push_str(&format!(
        "| keyed retries answered with the stored turn | {} of {} |\n",
        record.retries - record.retries_mismatched,
        record.retries
    ));
    out.push_str(&format!(
        "| pooler's server connections, most at once | {} |\n",
        injected.most_server_connections
    ));
    out.push_str(&format!(
        "| invariants checked / violated | {} / {} |\n",
        outcome.checked.len(),
        outcome.violations.len()
    ));
    out.push_str(
        "\nThe overheads are what a user sees through `cargo lambda watch`: a turn's total less \
         the time its messages told the model to take. Streamed answers pass the emulator as they \
         are written; a JSON answer waits in it when the emulator is busy (the functions' own \
         request logs put such a turn at its model time plus tens of milliseconds, and an \
         unloaded JSON turn over the same stack at its model time plus about 10 ms), so the \
         streamed figures are the closer measure of our own work under load.\n",
    );
    out.push_str("\nChecked afterwards, in the database: ");
    out.push_str(&outcome.checked.join("; "));
    out.push_str(".\n");
    if !outcome.violations.is_empty() {
        out.push_str("\n**Violated:**\n");
        for violation in &outcome.violations {
            out.push_str(&format!("- {violation}\n"));
        }
    }
    out
}

/// Puts `report` in `BENCHMARKS.md` in place of an earlier load test's section (the last
/// section of the file; `make bench` keeps it when it rewrites the rest).
pub fn write_to_benchmarks(report: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../BENCHMARKS.md");
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    let kept = match current.find("## Load test (`make load`)") {
        Some(at) => &current[..at],
        None => current.as_str(),
    };
    let updated = format!("{}\n\n{report}", kept.trim_end());
    if let Err(e) = std::fs::write(&path, updated) {
        eprintln!("load: could not write {}: {e}", path.display());
    }
}
