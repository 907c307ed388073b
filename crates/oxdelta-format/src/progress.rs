//! Progress reporting shared by the differs and the applier.
//!
//! Long work (indexing OLD, matching NEW, applying chunks) reports through a
//! [`Progress`] handle: a cheap, clonable wrapper around an optional
//! callback. The default handle reports nothing and costs one branch per
//! call. Calls come from worker threads, in whatever order chunks finish, so
//! callbacks must be `Send + Sync`; byte counts within one phase add up to
//! the total announced when the phase began.
//!
//! It lives in the format crate only because that is the one crate both
//! engines and the applier depend on; it does no I/O itself.

use std::fmt;
use std::sync::Arc;

/// A phase of long-running work.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Phase {
    /// Hashing OLD (and NEW) with BLAKE3 to identify them.
    Hashing,
    /// Building the index of OLD (suffix array or rolling-hash table).
    Indexing,
    /// Matching NEW against OLD and compressing the chunks.
    Matching,
    /// Checking OLD against the patch before anything is written.
    Verifying,
    /// Rebuilding NEW chunk by chunk.
    Applying,
}

impl Phase {
    /// A short lower-case name, for progress bars and logs.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Hashing => "hashing",
            Phase::Indexing => "indexing",
            Phase::Matching => "matching",
            Phase::Verifying => "verifying",
            Phase::Applying => "applying",
        }
    }
}

/// What a progress callback is told.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// A phase began; `total` bytes of work are expected in it.
    Start {
        /// The phase.
        phase: Phase,
        /// Bytes the phase will process.
        total: u64,
    },
    /// `bytes` more bytes of the current phase are done.
    Advance {
        /// Bytes just finished.
        bytes: u64,
    },
}

type Callback = dyn Fn(Event) + Send + Sync;

/// A handle to report progress through; [`Progress::none`] (the default)
/// discards everything.
#[derive(Clone, Default)]
pub struct Progress(Option<Arc<Callback>>);

impl Progress {
    /// Reports to `f`.
    pub fn new(f: impl Fn(Event) + Send + Sync + 'static) -> Progress {
        Progress(Some(Arc::new(f)))
    }

    /// Reports nothing.
    pub fn none() -> Progress {
        Progress(None)
    }

    /// Whether anyone is listening.
    pub fn is_active(&self) -> bool {
        self.0.is_some()
    }

    /// Announces the start of `phase` with `total` bytes of work.
    pub fn start(&self, phase: Phase, total: u64) {
        if let Some(f) = &self.0 {
            f(Event::Start { phase, total });
        }
    }

    /// Reports `bytes` more bytes done in the current phase.
    pub fn advance(&self, bytes: u64) {
        if let Some(f) = &self.0 {
            f(Event::Advance { bytes });
        }
    }
}

impl fmt::Debug for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "Progress(active)"
        } else {
            "Progress(none)"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn events_reach_the_callback_in_order() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let p = Progress::new(move |e| s.lock().unwrap().push(e));
        assert!(p.is_active());
        p.start(Phase::Applying, 10);
        p.clone().advance(4);
        p.advance(6);
        assert_eq!(
            *seen.lock().unwrap(),
            vec![
                Event::Start {
                    phase: Phase::Applying,
                    total: 10
                },
                Event::Advance { bytes: 4 },
                Event::Advance { bytes: 6 },
            ]
        );
        let quiet = Progress::none();
        assert!(!quiet.is_active());
        quiet.advance(1);
        assert_eq!(format!("{quiet:?}"), "Progress(none)");
    }
}
