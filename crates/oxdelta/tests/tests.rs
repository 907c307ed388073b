//! Integration tests of the oxdelta facade (one binary; modules in suite/).

#[path = "suite/golden.rs"]
mod golden;
#[path = "suite/hostile.rs"]
mod hostile;
