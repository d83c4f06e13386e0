//! What the users saw, gathered across them.

use std::{
    collections::BTreeMap,
    sync::{Mutex, OnceLock},
    time::Duration,
};

/// A turn the service acknowledged (200, or a stream's `finish`).
#[derive(Debug, Clone)]
pub struct Ack {
    pub assistant_message_id: String,
    /// The task a tool turn asked for, which must exist exactly once.
    pub task_title: Option<String>,
}

/// How long an acknowledged turn took, and how much of that the model was told to take.
#[derive(Debug, Clone)]
pub struct Turn {
    pub kind: String,
    pub total: Duration,
    pub paced: Duration,
}

/// Everything recorded.
#[derive(Debug, Default)]
pub struct Record {
    pub acks: Vec<Ack>,
    pub turns: Vec<Turn>,
    /// Answers by status, and by error code (`status code`).
    pub statuses: BTreeMap<String, u64>,
    pub retries: u64,
    pub retries_mismatched: u64,
}

static RECORD: OnceLock<Mutex<Record>> = OnceLock::new();

impl Record {
    fn with(f: impl FnOnce(&mut Record)) {
        let mut record = RECORD
            .get_or_init(Mutex::default)
            .lock()
            .expect("the record lock is never poisoned");
        f(&mut record);
    }

    /// Counts an answer (status 0: no HTTP answer at all). A refusal without our error
    /// envelope came from something in front of the functions (the emulator).
    pub fn status(status: u16, code: Option<&str>) {
        let key = match (code, status) {
            (Some(code), _) => format!("{status} {code}"),
            (None, 200..=299) => status.to_string(),
            (None, _) => format!("{status} without_envelope"),
        };
        Self::with(|r| *r.statuses.entry(key).or_default() += 1);
    }

    pub fn ack(ack: Ack) {
        Self::with(|r| r.acks.push(ack));
    }

    pub fn turn(turn: Turn) {
        Self::with(|r| r.turns.push(turn));
    }

    /// A keyed retry, and whether it answered the stored turn.
    pub fn retry(same: bool) {
        Self::with(|r| {
            r.retries += 1;
            r.retries_mismatched += u64::from(!same);
        });
    }

    /// Everything recorded so far.
    pub fn take() -> Record {
        let mut taken = Record::default();
        Self::with(|r| std::mem::swap(r, &mut taken));
        taken
    }

    /// Answers with status 500, whatever the code.
    pub fn server_errors(&self) -> u64 {
        self.statuses
            .iter()
            .filter(|(key, _)| key.split(' ').next() == Some("500"))
            .map(|(_, n)| n)
            .sum()
    }
}
