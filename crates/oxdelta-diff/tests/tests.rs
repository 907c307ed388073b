//! The differs' tests: round trips (property, repetitive and real data),
//! a naive-matcher oracle for the ops, serial == parallel output; the
//! streaming engine under tiny budgets, and its allocations against its
//! plan (through the counting allocator below).

mod counting;

mod anchor;
mod sa;
mod stream;

#[global_allocator]
static ALLOC: counting::Counting = counting::Counting;
