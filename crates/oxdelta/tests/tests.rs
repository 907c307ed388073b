//! Integration tests of the oxdelta library.

mod roundtrip;
