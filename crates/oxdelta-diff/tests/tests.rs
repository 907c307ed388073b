//! The differs' tests: round trips (property, repetitive and real data),
//! a naive-matcher oracle for the ops, serial == parallel output.

mod sa;
