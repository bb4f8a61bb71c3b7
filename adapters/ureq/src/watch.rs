//! The transport wrapper every connection of weir's `ureq` agent goes
//! through. It watches two things on the worker's thread (ureq's I/O is
//! blocking, on the caller's thread):
//!
//! * **Resets.** `ureq` reads a body without a length (close-delimited)
//!   until the connection ends, and takes a TCP reset or a TLS stream cut
//!   without `close_notify` for that end, so a truncated body would look
//!   complete. A broken read is noted; the worker asks after the body ends
//!   and reports a truncation instead.
//! * **Stops.** One agent (one pool) serves every worker, so aborting a
//!   transfer cannot shut the agent down. Instead a read waits in slices of
//!   [`SLICE`] and gives up between two slices once the transfer's
//!   [`Stop`] is raised: the connection is dropped (never pooled) and no
//!   other transfer is disturbed.

use std::cell::{Cell, RefCell};
use std::io;
use std::time::Instant;

use ureq::unversioned::transport::time::Duration as Budget;
use ureq::unversioned::transport::{Buffers, ConnectionDetails, Connector, NextTimeout, Transport};
use ureq::Error;
use weir_http::Stop;

/// Longest a read waits before it checks the transfer's stop.
pub(crate) const SLICE: std::time::Duration = std::time::Duration::from_millis(10);

thread_local! {
    static BROKEN: Cell<bool> = const { Cell::new(false) };
    static STOP: RefCell<Option<Stop>> = const { RefCell::new(None) };
}

/// Forget an earlier break (before reading a body).
pub(crate) fn clear() {
    BROKEN.with(|b| b.set(false));
}

/// Whether a read on this thread broke off since [`clear`].
pub(crate) fn broken() -> bool {
    BROKEN.with(Cell::get)
}

/// The stop of the transfer this thread runs now (`None` between transfers).
pub(crate) fn watch(stop: Option<Stop>) {
    STOP.with(|s| *s.borrow_mut() = stop);
}

fn stopped() -> bool {
    STOP.with(|s| s.borrow().as_ref().is_some_and(Stop::is_stopped))
}

/// Wraps every transport the default connector makes.
#[derive(Debug)]
pub(crate) struct Watch;

impl Connector<Box<dyn Transport>> for Watch {
    type Out = Watched;

    fn connect(&self, _: &ConnectionDetails, chained: Option<Box<dyn Transport>>) -> Result<Option<Watched>, Error> {
        Ok(chained.map(Watched))
    }
}

/// A transport whose broken reads are noted and whose reads stop.
#[derive(Debug)]
pub(crate) struct Watched(Box<dyn Transport>);

impl Watched {
    /// One read of at most `slice`.
    fn read(&mut self, slice: std::time::Duration, reason: ureq::Timeout) -> Result<bool, Error> {
        let t = NextTimeout { after: Budget::Exact(slice), reason, per_read: None, per_write: None };
        let r = self.0.await_input(t);
        if let Err(Error::Io(e)) = &r {
            use io::ErrorKind as K;
            if matches!(e.kind(), K::ConnectionReset | K::ConnectionAborted | K::UnexpectedEof) {
                BROKEN.with(|b| b.set(true));
            }
        }
        r
    }
}

impl Transport for Watched {
    fn buffers(&mut self) -> &mut dyn Buffers {
        self.0.buffers()
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), Error> {
        self.0.transmit_output(amount, timeout)
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, Error> {
        let budget = timeout.for_read();
        let start = Instant::now();
        loop {
            if stopped() {
                return Err(Error::Io(io::Error::new(io::ErrorKind::ConnectionAborted, "the transfer was aborted")));
            }
            let left = match budget.after {
                Budget::Exact(d) => Some(d.saturating_sub(start.elapsed())),
                Budget::NotHappening => None,
            };
            if left.is_some_and(|l| l.is_zero()) {
                return Err(Error::Timeout(budget.reason));
            }
            let slice = left.map_or(SLICE, |l| l.min(SLICE));
            match self.read(slice, budget.reason) {
                // The slice ran out, not the budget: check the stop, then wait on.
                Err(Error::Timeout(_)) if left.is_none_or(|l| l > slice) => {}
                r => return r,
            }
        }
    }

    fn is_open(&mut self) -> bool {
        self.0.is_open()
    }

    fn is_tls(&self) -> bool {
        self.0.is_tls()
    }
}
