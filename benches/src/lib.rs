//! Shared helpers for the benches: the naive baseline scheduler.
#![forbid(unsafe_code)]
#![allow(missing_docs)]

pub mod naive;
