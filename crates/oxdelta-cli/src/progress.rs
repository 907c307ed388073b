//! Progress bars on standard error, drawn only when it is a terminal.
//!
//! The library reports phases and byte counts through
//! [`oxdelta::Progress`]; this module turns them into one indicatif bar that
//! shows the phase, bytes done, throughput and time left. When standard
//! error is not a terminal, or with `--quiet`, no bar exists and the library
//! is handed a handle that reports nothing.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use oxdelta::{Event, Progress};

/// A progress bar, if one is shown.
pub struct Bar(Option<ProgressBar>);

impl Bar {
    /// A bar when `wanted` and standard error is a terminal.
    pub fn new(wanted: bool) -> Bar {
        if !wanted || !std::io::stderr().is_terminal() {
            return Bar(None);
        }
        let pb = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(
            "{msg:>9} [{bar:32}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        pb.set_style(style);
        Bar(Some(pb))
    }

    /// The handle to give the library.
    pub fn progress(&self) -> Progress {
        match &self.0 {
            None => Progress::none(),
            Some(pb) => {
                let pb = pb.clone();
                Progress::new(move |e| match e {
                    Event::Start { phase, total } => {
                        pb.set_message(phase.name());
                        pb.set_length(total);
                        pb.set_position(0);
                        pb.reset_eta();
                    }
                    Event::Advance { bytes } => pb.inc(bytes),
                })
            }
        }
    }

    /// Removes the bar (before the summary line is printed).
    pub fn finish(&self) {
        if let Some(pb) = &self.0 {
            pb.finish_and_clear();
        }
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.finish();
    }
}
