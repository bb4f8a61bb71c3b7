//! Drive `weir_http::Attempt` with no sockets: a model sink, one exchange
//! played from a response head, body chunks and an ending, and a model
//! resource with versions a (mis)behaving server answers from. Shared by
//! the table tests (`tests/attempt.rs`) and the `attempt` fuzz target.

use std::time::SystemTime;

use weir::{NetError, RequestMethod, Url};
use weir_http::attempt::{Attempt, End, Held, Verdict, Version};

/// A sink as the adapters keep one: bytes plus the version they belong to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelSink {
    /// What was written, in order.
    pub bytes: Vec<u8>,
    /// The version the bytes were fetched under.
    pub version: Version,
    /// Whether it can start over (memory, file) or not (a caller's writer).
    pub rewindable: bool,
    /// Status of the answer recorded as the download's response.
    pub status: Option<u16>,
}

impl ModelSink {
    /// An empty sink.
    #[must_use]
    pub fn new(rewindable: bool) -> Self {
        Self { rewindable, ..Self::default() }
    }

    /// What an attempt is told.
    #[must_use]
    pub fn held(&self) -> Held {
        Held { bytes: self.bytes.len() as u64, version: self.version.clone() }
    }

    /// A new attempt on this sink.
    #[must_use]
    pub fn attempt(&self, method: RequestMethod, range: Option<(u64, Option<u64>)>) -> Attempt {
        let url = Url::parse("http://127.0.0.1/r").expect("url");
        Attempt::new(url, method, range, self.held(), self.rewindable)
    }
}

/// How an exchange played out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Played {
    /// The request is complete: every wanted byte is in the sink.
    Complete,
    /// A redirect to follow.
    Redirect(Url),
    /// Failed with this error; the sink's bytes were discarded when the
    /// attempt said they belong to another version.
    Failed(NetError),
}

/// Play one answer: `status`, `headers`, the body in `chunks`, then `end`.
/// Applies every verdict to `sink` as an adapter does.
pub fn play(
    attempt: &mut Attempt,
    sink: &mut ModelSink,
    status: u16,
    headers: &[(&str, &str)],
    chunks: &[&[u8]],
    end: End,
) -> Played {
    if attempt.ask().is_none() {
        return if attempt.is_complete() {
            Played::Complete
        } else {
            Played::Failed(NetError::Protocol("over".into()))
        };
    }
    match attempt.on_head(status, headers, SystemTime::UNIX_EPOCH) {
        Verdict::Redirect(u) => return Played::Redirect(u),
        Verdict::Fail { error, discard } => {
            if discard {
                assert!(sink.rewindable, "an attempt never asks a writer to discard");
                sink.bytes.clear();
                sink.version = Version::default();
            }
            return Played::Failed(error);
        }
        Verdict::Accept { restart, record } => {
            if restart {
                assert!(sink.rewindable, "an attempt never restarts a writer");
                sink.bytes.clear();
            }
            if record {
                sink.status = Some(status);
            }
            sink.version = attempt.version().clone();
        }
    }
    for c in chunks {
        if !attempt.wants_more() && attempt.unread().is_none_or(|u| u > weir_http::attempt::DRAIN_LIMIT) {
            break;
        }
        match attempt.on_body(c) {
            Ok(part) => sink.bytes.extend_from_slice(part),
            Err(e) => return Played::Failed(e),
        }
    }
    match attempt.on_end(end) {
        Ok(()) => Played::Complete,
        Err(e) => Played::Failed(e),
    }
}

/// One version of a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Body {
    /// Its bytes.
    pub bytes: Vec<u8>,
    /// Its `ETag` (strong), if the server sends one.
    pub etag: Option<String>,
}

/// Whether `sink` holds exactly `range` of one of `versions`.
#[must_use]
pub fn is_one_version(sink: &[u8], versions: &[Body], range: Option<(u64, Option<u64>)>) -> bool {
    let (start, end) = range.unwrap_or((0, None));
    versions.iter().any(|v| {
        let len = v.bytes.len() as u64;
        let from = start.min(len) as usize;
        let to = end.map_or(len, |e| e.saturating_add(1).min(len)) as usize;
        v.bytes.get(from..to.max(from)) == Some(sink)
    })
}
