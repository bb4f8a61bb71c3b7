//! # weir-http: the HTTP logic weir's adapters share
//!
//! The blocking (`weir-ureq`) and async (`weir-async`) adapters differ in
//! how they move bytes, not in what bytes they ask for: both plan each
//! attempt with [`resume::ask`], check the answer with [`resume::plan`], cut
//! the body with [`resume::Cursor`] and write it to a [`Sink`]. That is what
//! guarantees every byte of a resource reaches the sink exactly once across
//! retries, resumes and preemptions.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod attempt;
pub mod outcome;
pub mod parse;
pub mod report;
pub mod resume;
pub mod sink;

pub use attempt::{Attempt, End, Held, Verdict, Version};
pub use outcome::{Event, FetchError, Outcome, Response};
pub use parse::{content_range, range_header, retry_after, ContentRange};
pub use sink::{Delivered, Sink, SinkState};
