//! Progress bars on standard error, drawn only when it is a terminal.
//!
//! The library reports phases and byte counts through
//! [`oxdelta::Progress`]; this module turns them into one indicatif bar that
//! shows the phase, bytes done, throughput and time left. When standard
//! error is not a terminal, or with `--quiet`, no bar exists and the library
//! is handed a handle that reports nothing.
//!
//! With `--verbose` the same events also time each phase, printed after
//! the summary line (`phases: hashing 0.02 s, indexing 0.31 s, …`): where
//! a run's time went, without a profiler.

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use oxdelta::{Event, Phase, Progress};

/// When each phase began, in order.
type Starts = Arc<Mutex<Vec<(Phase, Instant)>>>;

/// A progress bar, if one is shown, and the phases' start times, if timed.
pub struct Bar {
    pb: Option<ProgressBar>,
    starts: Option<Starts>,
}

impl Bar {
    /// A bar when `wanted` and standard error is a terminal; phase timing
    /// when `timed`.
    pub fn new(wanted: bool, timed: bool) -> Bar {
        let starts = timed.then(Starts::default);
        if !wanted || !std::io::stderr().is_terminal() {
            return Bar { pb: None, starts };
        }
        let pb = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(
            "{msg:>9} [{bar:32}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        pb.set_style(style);
        Bar {
            pb: Some(pb),
            starts,
        }
    }

    /// The handle to give the library.
    pub fn progress(&self) -> Progress {
        if self.pb.is_none() && self.starts.is_none() {
            return Progress::none();
        }
        let (pb, starts) = (self.pb.clone(), self.starts.clone());
        Progress::new(move |e| match e {
            Event::Start { phase, total } => {
                if let Some(s) = &starts {
                    if let Ok(mut s) = s.lock() {
                        s.push((phase, Instant::now()));
                    }
                }
                if let Some(pb) = &pb {
                    pb.set_message(phase.name());
                    pb.set_length(total);
                    pb.set_position(0);
                    pb.reset_eta();
                }
            }
            Event::Advance { bytes } => {
                if let Some(pb) = &pb {
                    pb.inc(bytes)
                }
            }
        })
    }

    /// Removes the bar (before the summary line is printed).
    pub fn finish(&self) {
        if let Some(pb) = &self.pb {
            pb.finish_and_clear();
        }
    }

    /// `phases: NAME SECS s, …`, each phase lasting until the next began
    /// and the last until now; `None` when not timed or nothing was
    /// reported.
    pub fn phase_times(&self) -> Option<String> {
        let starts = self.starts.as_ref()?.lock().ok()?;
        if starts.is_empty() {
            return None;
        }
        let now = Instant::now();
        let parts: Vec<String> = starts
            .iter()
            .enumerate()
            .map(|(i, (phase, at))| {
                let end = starts.get(i + 1).map_or(now, |n| n.1);
                format!("{} {:.2} s", phase.name(), (end - *at).as_secs_f64())
            })
            .collect();
        Some(format!("phases: {}", parts.join(", ")))
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.finish();
    }
}
