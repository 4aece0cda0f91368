//! Unit and property tests of the pure apply rules.
