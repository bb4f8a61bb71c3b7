//! Live progress of one download: bytes in its sink and the size it will
//! have, readable at any moment from the download's handle without
//! wrapping the sink. The sink is its only writer; handles only read.

use std::sync::atomic::{AtomicU64, Ordering};

const UNKNOWN: u64 = u64::MAX;

/// Shared between a download's sink (writer) and its handle (reader).
#[derive(Debug)]
pub struct Progress {
    bytes: AtomicU64,
    total: AtomicU64,
}

impl Default for Progress {
    fn default() -> Self {
        Progress { bytes: AtomicU64::new(0), total: AtomicU64::new(UNKNOWN) }
    }
}

/// A reading of [`Progress`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    /// Bytes the sink holds (a resumed partial file's included; back to 0
    /// when the sink starts over).
    pub bytes: u64,
    /// Bytes the sink will hold when complete, once a response told.
    pub total: Option<u64>,
}

impl Progress {
    /// What the sink holds now and will hold.
    #[must_use]
    pub fn get(&self) -> Snapshot {
        let total = self.total.load(Ordering::Relaxed);
        Snapshot { bytes: self.bytes.load(Ordering::Relaxed), total: (total != UNKNOWN).then_some(total) }
    }

    /// The sink holds `n` bytes (for an adapter that writes a sink of its
    /// own, such as an async writer; [`SinkState`](crate::SinkState) does this itself).
    pub fn set_bytes(&self, n: u64) {
        self.bytes.store(n, Ordering::Relaxed);
    }

    /// The sink will hold `total` bytes when complete (`None`: unknown).
    pub fn set_total(&self, total: Option<u64>) {
        self.total.store(total.unwrap_or(UNKNOWN), Ordering::Relaxed);
    }
}
