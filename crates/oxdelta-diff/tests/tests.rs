//! The differs' tests: round trips (property, repetitive and real data),
//! a naive-matcher oracle for the ops, serial == parallel output; the
//! streaming engine under tiny budgets.

mod anchor;
mod sa;
mod stream;
