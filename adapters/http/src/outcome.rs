//! What a download ends with, the same for every adapter.

use std::path::PathBuf;

use weir::{CancelReason, DownloaderEvent, EnqueueError, NetError, PeerId};

use crate::sink::{Delivered, SinkState};

/// A completed download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status of the first answer that carried the body (200 or 206; for HEAD, its status).
    pub status: u16,
    /// Headers of that answer, in order.
    pub headers: Vec<(String, String)>,
    /// Bytes delivered to the sink.
    pub bytes: u64,
    /// The body, for [`Sink::Memory`](crate::Sink::Memory).
    pub body: Option<Vec<u8>>,
    /// Where the file is, for [`Sink::File`](crate::Sink::File).
    pub path: Option<PathBuf>,
}

impl Response {
    /// The first header named `name` (case-insensitive).
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Why a download did not complete.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FetchError {
    /// The scheduler refused the request.
    Refused(EnqueueError),
    /// The transfer failed for good.
    Failed(NetError),
    /// The request was cancelled.
    Cancelled(CancelReason),
    /// The downloader is gone.
    Gone,
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchError::Refused(e) => write!(f, "refused: {e}"),
            FetchError::Failed(e) => write!(f, "failed: {e}"),
            FetchError::Cancelled(r) => write!(f, "cancelled ({r:?})"),
            FetchError::Gone => f.write_str("the downloader is gone"),
        }
    }
}

impl std::error::Error for FetchError {}

impl From<NetError> for FetchError {
    fn from(e: NetError) -> Self {
        FetchError::Failed(e)
    }
}

/// The outcome of a download.
pub type Outcome = Result<Response, FetchError>;

/// An event and the peer whose scope it belongs to.
pub type Event = (PeerId, DownloaderEvent);

impl SinkState {
    /// Settle the sink of a request that just ended with `event`: a
    /// completed download is flushed (a file renamed into place) and becomes
    /// its [`Response`]; a failed or cancelled one leaves no partial file.
    /// `None` for an event that is not terminal.
    #[must_use]
    pub fn settle(self, event: &DownloaderEvent) -> Option<Outcome> {
        Some(match event {
            DownloaderEvent::RequestCompleted { .. } => {
                let (status, headers, bytes) = (self.status, self.headers.clone(), self.written);
                self.finish()
                    .map(|d| {
                        let (body, path) = match d {
                            Delivered::Memory(v) => (Some(v), None),
                            Delivered::File(p) => (None, Some(p)),
                            Delivered::Writer => (None, None),
                        };
                        Response { status, headers, bytes, body, path }
                    })
                    .map_err(FetchError::Failed)
            }
            DownloaderEvent::RequestFailed { error, .. } => {
                self.abandon();
                Err(FetchError::Failed(error.clone()))
            }
            DownloaderEvent::RequestCancelled { reason, .. } => {
                self.abandon();
                Err(FetchError::Cancelled(*reason))
            }
            _ => return None,
        })
    }
}
