//! `tracing` output (feature `tracing`): one span per download, named
//! `weir_download` with its `request` id, `peer` and `url`; the adapters
//! run each transfer inside it; an event per start, retry, redirect,
//! preemption, slow load and end, parented by it. Nothing is logged unless
//! the program installs a subscriber.

use tracing::{debug, info, info_span, warn, Span};
use weir::{DownloaderEvent, PeerId, RequestId, Url};

/// The span of a download accepted just now.
pub(crate) fn span(id: RequestId, peer: PeerId, url: &Url) -> Span {
    info_span!("weir_download", request = %id, peer = %peer, url = %url)
}

/// Log what the scheduler said about the download of `span`.
pub(crate) fn event(span: &Span, ev: &DownloaderEvent) {
    use DownloaderEvent as E;
    match ev {
        E::RequestStarted { attempt, wait_in_queue, .. } => {
            debug!(parent: span, attempt, wait_ms = wait_in_queue.as_millis() as u64, "started");
        }
        E::LoadSlow { elapsed, .. } => info!(parent: span, elapsed_ms = elapsed.as_millis() as u64, "slow"),
        E::RequestRetrying { attempt, delay, error, .. } => {
            info!(parent: span, next_attempt = attempt, delay_ms = delay.as_millis() as u64, %error, "retrying");
        }
        E::RequestRedirected { url, .. } => info!(parent: span, to = %url, "redirected"),
        E::RequestPreempted { bytes_transferred, .. } => debug!(parent: span, bytes = bytes_transferred, "preempted"),
        E::RequestCompleted { bytes_transferred, bandwidth_bps, .. } => {
            info!(parent: span, bytes = bytes_transferred, bps = bandwidth_bps, "completed");
        }
        E::RequestFailed { error, retryable, .. } => warn!(parent: span, %error, retryable, "failed"),
        E::RequestCancelled { reason, bytes_transferred, .. } => {
            debug!(parent: span, reason = ?reason, bytes = bytes_transferred, "cancelled");
        }
        _ => {}
    }
}

/// The response head of an attempt, logged by the transfer (on the
/// adapter's thread or task, inside the download's span).
pub(crate) fn head(status: u16) {
    debug!(status, "response");
}
