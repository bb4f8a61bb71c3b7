//! [`Class`]: which of the four wait queues a request is served from.

use crate::request::RequestPriority;

/// (peer priority × request priority), in service order: peer priority
/// dominates, so a playing track's prefetch (`HighLow`) beats a paused
/// track's demand (`LowHigh`). `Ord` is that order: a greater class is a
/// strictly worse one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Class {
    HighHigh,
    HighLow,
    LowHigh,
    LowLow,
}

impl Class {
    /// Every class, best first.
    pub(crate) const ALL: [Class; 4] = [Class::HighHigh, Class::HighLow, Class::LowHigh, Class::LowLow];

    pub(crate) const fn of(peer: RequestPriority, request: RequestPriority) -> Self {
        match (peer, request) {
            (RequestPriority::High, RequestPriority::High) => Class::HighHigh,
            (RequestPriority::High, RequestPriority::Low) => Class::HighLow,
            (RequestPriority::Low, RequestPriority::High) => Class::LowHigh,
            (RequestPriority::Low, RequestPriority::Low) => Class::LowLow,
        }
    }

    pub(crate) const fn index(self) -> usize {
        self as usize
    }

    /// The request priority of the class (what the Low reserve and
    /// preemption look at).
    pub(crate) const fn request(self) -> RequestPriority {
        match self {
            Class::HighHigh | Class::LowHigh => RequestPriority::High,
            Class::HighLow | Class::LowLow => RequestPriority::Low,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RequestPriority::{High, Low};

    #[test]
    fn peer_priority_dominates() {
        assert!(Class::of(High, Low) < Class::of(Low, High));
        assert_eq!(Class::ALL.map(|c| c.index()), [0, 1, 2, 3]);
        assert_eq!(Class::ALL.map(Class::request), [High, Low, High, Low]);
    }
}
