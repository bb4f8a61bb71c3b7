//! # weir-http: the HTTP logic weir's adapters share
//!
//! The blocking (`weir-ureq`) and async (`weir-async`) adapters differ in
//! how they move bytes, not in what bytes they ask for: both run every HTTP
//! exchange through an [`Attempt`], the sans-IO state machine that says what
//! to ask, judges the answer (redirect, fail, accept, restart the sink) and
//! cuts each body chunk to what the [`Sink`] must write. That is what
//! guarantees a completed download is exactly one version of the resource,
//! every byte once, across retries, resumes, preemptions and a server that
//! ignores `Range`, ignores `If-Range` or lies about lengths.
//!
//! | module | owns |
//! |---|---|
//! | [`hub`] | the driver: the scheduler, live downloads, subscribers; builds transfers, settles downloads |
//! | [`transfer`] | one attempt as it runs on a worker: the sink it holds, its stop signal, its reports |
//! | [`trace`] | record every scheduler input as JSON lines (feature `trace`) and replay a trace |
//! | [`attempt`] | one HTTP exchange: what to ask, the verdict on a head, the part of each chunk to write, complete or truncated |
//! | [`sink`] | where bytes go (memory, a private temporary file, a resumable partial file, a writer) and their one byte count |
//! | [`partial`] | the resumable partial file: `DEST.part`, its version in `DEST.part.meta`, its lock |
//! | [`headers`] | the caller's request headers, `User-Agent`, credentials kept to their origin |
//! | [`integrity`] | expected size and SHA-256, checked as bytes arrive |
//! | [`fetch`] | the HTTP side of one download (headers, expectations) |
//! | [`progress`] | bytes and total a handle reads at any moment |
//! | [`outcome`] | what a download ends with |
//! | [`parse`] | `Retry-After`, `Content-Range` |
//! | [`report`] | how often a transfer reports bytes to the scheduler |
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod attempt;
pub mod fetch;
pub mod headers;
pub mod hub;
pub mod integrity;
#[cfg(feature = "tracing")]
mod observe;
pub mod outcome;
pub mod parse;
pub mod partial;
pub mod progress;
pub mod proxy;
pub mod report;
pub mod sink;
pub mod trace;
pub mod transfer;

/// Default largest body a [`Sink::Memory`] accepts: 256 MiB.
pub const DEFAULT_MEMORY_LIMIT: u64 = 256 * 1024 * 1024;

pub use attempt::{Attempt, End, Held, Verdict, Version};
pub use fetch::{Check, Fetch, Head};
pub use headers::{response_headers, HeaderError, Headers, USER_AGENT};
pub use hub::{
    place_files, sync_together, Action, Command, Hub, HubOptions, Input, Item, Reply, Settlement, Subscriber,
    MOST_FILES_WAITING,
};
pub use integrity::{Expect, Verifier};
pub use outcome::{Event, FetchError, Outcome, Response};
pub use parse::{content_range, range_header, retry_after, ContentRange};
pub use progress::{Progress, Snapshot};
pub use sink::{Delivered, Sink, SinkState};
pub use transfer::{Finished, Report, ResponseHead, Stop, Transfer};
