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
    rate: AtomicU64,
}

impl Default for Progress {
    fn default() -> Self {
        Progress { bytes: AtomicU64::new(0), total: AtomicU64::new(UNKNOWN), rate: AtomicU64::new(UNKNOWN) }
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
    /// The running transfer's current rate in bits per second
    /// (`Scheduler::transfer_rate`, kept by the hub as bytes are
    /// reported); `None` between transfers and before the first bytes.
    pub rate_bps: Option<u64>,
}

impl Snapshot {
    /// Time to completion at the current rate, when total and rate are known.
    #[must_use]
    pub fn eta(&self) -> Option<std::time::Duration> {
        let left = self.total?.checked_sub(self.bytes)?;
        let rate = self.rate_bps.filter(|&r| r > 0)?;
        let secs = u128::from(left) * 8 * 1_000_000_000 / u128::from(rate);
        Some(std::time::Duration::from_nanos(u64::try_from(secs).unwrap_or(u64::MAX)))
    }
}

impl Progress {
    /// What the sink holds now and will hold.
    #[must_use]
    pub fn get(&self) -> Snapshot {
        let known = |v: u64| (v != UNKNOWN).then_some(v);
        Snapshot {
            bytes: self.bytes.load(Ordering::Relaxed),
            total: known(self.total.load(Ordering::Relaxed)),
            rate_bps: known(self.rate.load(Ordering::Relaxed)),
        }
    }

    /// The sink holds `n` bytes (for an adapter that writes a sink of its
    /// own, such as an async writer; [`SinkState`](crate::SinkState) does this itself).
    pub fn set_bytes(&self, n: u64) {
        self.bytes.store(n, Ordering::Relaxed);
    }

    /// The transfer runs at `rate` bits per second (`None`: not running,
    /// or not known yet).
    pub fn set_rate(&self, rate: Option<u64>) {
        self.rate.store(rate.unwrap_or(UNKNOWN), Ordering::Relaxed);
    }

    /// The sink will hold `total` bytes when complete (`None`: unknown).
    pub fn set_total(&self, total: Option<u64>) {
        self.total.store(total.unwrap_or(UNKNOWN), Ordering::Relaxed);
    }
}
