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
