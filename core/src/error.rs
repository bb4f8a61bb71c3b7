//! Errors: why a transfer failed ([`NetError`], reported as an event), why an
//! enqueue was refused ([`EnqueueError`]) and why a config is rejected
//! ([`ConfigError`]). Caller misuse is a `Result::Err`; a failed download is
//! an event.

use std::fmt;
use std::time::Duration;

/// Why a transfer failed. Adapters report it with
/// [`Scheduler::on_failed`](crate::Scheduler::on_failed); the scheduler
/// decides from [`NetError::is_retryable`] whether to retry.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(tag = "kind", content = "detail", rename_all = "snake_case"))]
#[non_exhaustive]
pub enum NetError {
    /// The URL is malformed or its scheme is not supported.
    InvalidUrl(String),
    /// The host name could not be resolved.
    Dns(String),
    /// The TCP connection could not be established.
    Connect(String),
    /// The TLS handshake or certificate check failed.
    Tls(String),
    /// An idle or hard timeout expired.
    Timeout,
    /// The connection was reset, or the body ended before its announced length.
    Reset(String),
    /// The server answered with an error status.
    Status {
        /// The HTTP status code.
        status: u16,
        /// The server's `Retry-After`, when it sent one.
        #[cfg_attr(feature = "serde", serde(with = "crate::serde_support::opt_secs"))]
        retry_after: Option<Duration>,
    },
    /// The body is larger than the adapter accepts.
    TooLarge,
    /// Writing to the sink failed.
    Sink(String),
    /// The server broke the protocol, e.g. a 206 for the wrong range.
    Protocol(String),
    /// The bytes are not what the download expected (its size or digest).
    Integrity(String),
}

impl NetError {
    /// Whether trying again may succeed: DNS, connect, timeout, reset and the
    /// statuses 408, 429 and 5xx.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        match self {
            NetError::Dns(_) | NetError::Connect(_) | NetError::Timeout | NetError::Reset(_) => true,
            NetError::Status { status, .. } => matches!(status, 408 | 429 | 500..=599),
            NetError::InvalidUrl(_)
            | NetError::Tls(_)
            | NetError::TooLarge
            | NetError::Sink(_)
            | NetError::Protocol(_)
            | NetError::Integrity(_) => false,
        }
    }

    /// The server's `Retry-After`, if this error carries one.
    #[must_use]
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            NetError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetError::InvalidUrl(m) => write!(f, "invalid URL: {m}"),
            NetError::Dns(m) => write!(f, "DNS lookup failed: {m}"),
            NetError::Connect(m) => write!(f, "connection failed: {m}"),
            NetError::Tls(m) => write!(f, "TLS failed: {m}"),
            NetError::Timeout => f.write_str("timed out"),
            NetError::Reset(m) => write!(f, "connection reset or body truncated: {m}"),
            NetError::Status { status, retry_after: Some(d) } => {
                write!(f, "HTTP status {status} (retry after {:.3} s)", d.as_secs_f64())
            }
            NetError::Status { status, retry_after: None } => write!(f, "HTTP status {status}"),
            NetError::TooLarge => f.write_str("body too large"),
            NetError::Sink(m) => write!(f, "writing to the sink failed: {m}"),
            NetError::Protocol(m) => write!(f, "protocol error: {m}"),
            NetError::Integrity(m) => write!(f, "integrity check failed: {m}"),
        }
    }
}

impl std::error::Error for NetError {}

/// Why [`Scheduler::enqueue`](crate::Scheduler::enqueue) refused a request.
/// A refused enqueue uses no id and emits nothing.
///
/// Checks run in the order of the variants below.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(tag = "kind", content = "detail", rename_all = "snake_case"))]
#[non_exhaustive]
pub enum EnqueueError {
    /// [`Scheduler::shutdown`](crate::Scheduler::shutdown) was called.
    ShutDown,
    /// The peer was removed, or never belonged to this scheduler.
    UnknownPeer,
    /// The group belongs to another peer.
    UnknownGroup,
    /// The request cannot be fetched: unsupported scheme, no host, or a range
    /// whose start is past its end.
    InvalidRequest(String),
    /// `Config::max_queued` requests are already waiting (or the scheduler's
    /// hard capacity of live requests is reached).
    QueueFull,
}

impl fmt::Display for EnqueueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EnqueueError::ShutDown => f.write_str("the scheduler is shut down"),
            EnqueueError::UnknownPeer => f.write_str("unknown or removed peer"),
            EnqueueError::UnknownGroup => f.write_str("the group belongs to another peer"),
            EnqueueError::InvalidRequest(m) => write!(f, "invalid request: {m}"),
            EnqueueError::QueueFull => f.write_str("the queue is full"),
        }
    }
}

impl std::error::Error for EnqueueError {}

/// A [`Config`](crate::Config) that cannot work, refused by
/// [`Scheduler::try_new`](crate::Scheduler::try_new).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// `max_concurrent` is 0: nothing could ever start.
    ZeroConcurrency,
    /// A limit that must be at least 1 is `Some(0)`; names the field.
    ZeroLimit(&'static str),
    /// A timeout is `Some(Duration::ZERO)`; names the field.
    ZeroTimeout(&'static str),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::ZeroConcurrency => f.write_str("invalid config: max_concurrent must be at least 1"),
            ConfigError::ZeroLimit(field) => {
                write!(f, "invalid config: {field} must be at least 1 (use None for no limit)")
            }
            ConfigError::ZeroTimeout(field) => {
                write!(f, "invalid config: {field} must be longer than zero (use None to disable it)")
            }
        }
    }
}

impl std::error::Error for ConfigError {}
