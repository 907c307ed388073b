//! Integration tests of the oxdelta library.

mod roundtrip;

// Golden patches and hostile input (modules under suite/).
#[path = "suite/embed.rs"]
mod embed;
#[path = "suite/golden.rs"]
mod golden;
#[path = "suite/hostile.rs"]
mod hostile;
#[path = "suite/identity.rs"]
mod identity;
#[path = "suite/streaming.rs"]
mod streaming;

/// Apply options that may replace an existing OUT: these tests write a
/// marker to OUT first, to check that a failed apply leaves it as it was.
pub fn overwriting() -> oxdelta::ApplyOptions {
    oxdelta::ApplyOptions {
        overwrite: true,
        ..oxdelta::ApplyOptions::default()
    }
}
