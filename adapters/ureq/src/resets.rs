//! Telling a reset from an end. `ureq` reads a body without a length
//! (close-delimited) until the connection ends, and takes a TCP reset or a
//! TLS stream cut without `close_notify` for that end, so a truncated body
//! would look complete. This transport wrapper notes such a break on the
//! worker's thread (ureq's I/O is blocking, on the caller's thread); the
//! worker asks after the body ends and reports a truncation instead.

use std::cell::Cell;
use std::io;

use ureq::unversioned::transport::{Buffers, ConnectionDetails, Connector, NextTimeout, Transport};
use ureq::Error;

thread_local! {
    static BROKEN: Cell<bool> = const { Cell::new(false) };
}

/// Forget an earlier break (before reading a body).
pub(crate) fn clear() {
    BROKEN.with(|b| b.set(false));
}

/// Whether a read on this thread broke off since [`clear`].
pub(crate) fn broken() -> bool {
    BROKEN.with(Cell::get)
}

/// Wraps every transport the default connector makes.
#[derive(Debug)]
pub(crate) struct WatchResets;

impl Connector<Box<dyn Transport>> for WatchResets {
    type Out = Watched;

    fn connect(&self, _: &ConnectionDetails, chained: Option<Box<dyn Transport>>) -> Result<Option<Watched>, Error> {
        Ok(chained.map(Watched))
    }
}

/// A transport whose broken reads are noted.
#[derive(Debug)]
pub(crate) struct Watched(Box<dyn Transport>);

impl Transport for Watched {
    fn buffers(&mut self) -> &mut dyn Buffers {
        self.0.buffers()
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), Error> {
        self.0.transmit_output(amount, timeout)
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, Error> {
        let r = self.0.await_input(timeout);
        if let Err(Error::Io(e)) = &r {
            use io::ErrorKind as K;
            if matches!(e.kind(), K::ConnectionReset | K::ConnectionAborted | K::UnexpectedEof) {
                BROKEN.with(|b| b.set(true));
            }
        }
        r
    }

    fn is_open(&mut self) -> bool {
        self.0.is_open()
    }

    fn is_tls(&self) -> bool {
        self.0.is_tls()
    }
}
