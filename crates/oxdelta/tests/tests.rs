//! Integration tests of the oxdelta facade.

mod golden;
mod hostile;
