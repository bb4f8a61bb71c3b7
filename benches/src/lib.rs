//! Shared helpers for the benches (none yet).
#![forbid(unsafe_code)]
