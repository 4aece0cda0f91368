//! Sync benchmark.

fn main() {}
