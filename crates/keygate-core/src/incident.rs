//! A store's background work (sync, expiry watch, `lastUsedAt`, purge) and how
//! its failures and recoveries are reported: once per episode, never a panic.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::error::{redact_secrets, Error};

/// A store's background work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Task {
    /// Applying other processes' changes (durable store); while it fails, checks
    /// answer `store_unavailable`.
    Sync,
    /// Keeping the decision memo exact across expiry instants; while it fails,
    /// decisions are not remembered.
    Expiry,
    /// Writing `lastUsedAt` of used keys to the durable store.
    LastUsed,
    /// Deleting keys expired for longer than `purgeExpiredAfterDays`.
    Purge,
}

impl Task {
    pub const fn as_str(self) -> &'static str {
        match self {
            Task::Sync => "sync",
            Task::Expiry => "expiry",
            Task::LastUsed => "lastUsedAt",
            Task::Purge => "purge",
        }
    }

    /// What fails while the task does, for people reading the log.
    pub const fn consequence(self) -> &'static str {
        match self {
            Task::Sync => {
                "the store cannot vouch that it is current, so every check answers store_unavailable (denied) until it has caught up again"
            }
            Task::Expiry => "decisions are not remembered meanwhile (answers stay exact)",
            Task::LastUsed => "lastUsedAt is not written meanwhile (uses are kept and retried)",
            Task::Purge => "long-expired keys are not deleted meanwhile",
        }
    }
}

/// What a background task reports: the first failure of an episode, or the
/// recovery that ends it (`recovered`, with the error that started the episode).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incident {
    pub task: Task,
    pub error: Error,
    pub recovered: bool,
}

impl std::fmt::Display for Incident {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.recovered {
            write!(f, "keygate: {} works again (it had failed with {})", self.task.as_str(), self.error.code.as_str())
        } else {
            write!(f, "keygate: {} failed: {}; {}", self.task.as_str(), self.error, self.task.consequence())
        }
    }
}

/// Receives a store's [`Incident`]s, on a keygate thread: it must return quickly and
/// must not call the store (the Node binding hands them to the event loop).
pub type OnError = Arc<dyn Fn(&Incident) + Send + Sync>;

/// Reports each background failure once per episode, and the recovery that ends it.
pub(crate) struct Reporter {
    handler: Option<OnError>,
    /// Episodes not yet ended: the task and the error that started it.
    open: Mutex<Vec<(Task, Error)>>,
}

impl Reporter {
    pub(crate) fn new(handler: Option<OnError>) -> Reporter {
        Reporter { handler, open: Mutex::new(Vec::new()) }
    }

    /// A failure of `task`: reported unless an episode is already open.
    pub(crate) fn fail(&self, task: Task, error: Error) {
        {
            let mut open = self.open.lock();
            if open.iter().any(|(t, _)| *t == task) {
                return;
            }
            open.push((task, error.clone()));
        }
        self.deliver(&Incident { task, error, recovered: false });
    }

    /// `task` succeeded: ends its episode, if one is open, and says so.
    pub(crate) fn recover(&self, task: Task) {
        let mut ended = None;
        self.open.lock().retain(|(t, error)| {
            if *t == task {
                ended = Some(error.clone());
            }
            *t != task
        });
        if let Some(error) = ended {
            self.deliver(&Incident { task, error, recovered: true });
        }
    }

    fn deliver(&self, incident: &Incident) {
        match &self.handler {
            // A failing handler must not take the reporting thread down with it.
            Some(handler) => {
                let _ = catch_unwind(AssertUnwindSafe(|| handler(incident)));
            }
            // Not `eprintln!`, which panics when stderr cannot take the line.
            None => {
                use std::io::Write;
                let _ = writeln!(std::io::stderr(), "{}", redact_secrets(&incident.to_string()));
            }
        }
    }
}
